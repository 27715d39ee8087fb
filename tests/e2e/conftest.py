"""One real stack (sandbox + `orderpay serve` processes) per backend for the e2e module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clients.client import OrderPayClient
from tests.support.stack import ADMIN_TOKEN, BFF_TOKEN, Stack, running_stack


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack"), database_url) as running:
        yield running


@pytest.fixture
def bff(stack: Stack) -> Iterator[OrderPayClient]:
    with OrderPayClient(stack.grpc_target, BFF_TOKEN, default_timeout=10) as client:
        yield client


@pytest.fixture
def admin(stack: Stack) -> Iterator[OrderPayClient]:
    with OrderPayClient(stack.grpc_target, ADMIN_TOKEN, default_timeout=10) as client:
        yield client
