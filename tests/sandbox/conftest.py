"""Fixtures for the sandbox layer: one throwaway credentials bundle per session, a fresh sandbox per
test on 127.0.0.1:0 (in a thread), a signed merchant-side caller and a notification receiver."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.app import RunningSandbox, run_in_thread
from sandbox.config import Faults, SandboxConfig
from sandbox.keys.bundle import Credentials, init_bundle, load_credentials
from sandbox.testing import MerchantCaller, NotificationReceiver

MakeSandbox = Callable[..., RunningSandbox]


@pytest.fixture(scope="session")
def credentials_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sandbox-keys")
    init_bundle(directory)
    return directory


@pytest.fixture(scope="session")
def credentials(credentials_dir: Path) -> Credentials:
    return load_credentials(credentials_dir)


@pytest.fixture
def make_sandbox(credentials: Credentials) -> Iterator[MakeSandbox]:
    running: list[RunningSandbox] = []

    def make(faults: Faults | None = None, **settings: Any) -> RunningSandbox:
        settings.setdefault("time_scale", 0.01)
        config = SandboxConfig(credentials=credentials, faults=faults or Faults(), **settings)
        sandbox = run_in_thread(config)
        running.append(sandbox)
        return sandbox

    yield make
    for sandbox in running:
        sandbox.stop()


@pytest.fixture
def make_caller(credentials: Credentials) -> Iterator[Callable[..., MerchantCaller]]:
    """A signed caller for another sandbox instance; closed after the test."""
    callers: list[MerchantCaller] = []

    def make(sandbox: RunningSandbox, **options: Any) -> MerchantCaller:
        client = MerchantCaller(sandbox.base_url, credentials, **options)
        callers.append(client)
        return client

    yield make
    for client in callers:
        client.close()


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox()


@pytest.fixture
def caller(sandbox: RunningSandbox, credentials: Credentials) -> Iterator[MerchantCaller]:
    client = MerchantCaller(sandbox.base_url, credentials)
    yield client
    client.close()


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    rx = NotificationReceiver().start()
    yield rx
    rx.stop()


@pytest.fixture
def out_trade_no() -> str:
    return "T" + secrets.token_hex(8)
