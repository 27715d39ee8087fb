"""`loadtest full-flow` turns the sandbox's auto-pay on for its run only: afterwards the sandbox is as it
was, so `demo --manual` waits for a person to click Pay again."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.databases import sqlite_url
from tests.support.stack import BFF_TOKEN, ROOT, Stack, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("full-flow")
    with running_stack(workdir, sqlite_url(workdir)) as running:
        yield running


def _full_flow(stack: Stack, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", "loadtest", "full-flow", "--count", "3", "--concurrency", "3",
         "--target", stack.grpc_target, "--token", BFF_TOKEN, "--sandbox-url", stack.sandbox_url,
         "--database-url", stack.database_url, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_full_flow_leaves_auto_pay_as_it_found_it(stack: Stack) -> None:
    before = stack.control("GET", "config")

    done = _full_flow(stack)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "3/3" in done.stdout or "outcomes={'SUCCEEDED': 3}" in done.stdout, done.stdout
    assert stack.control("GET", "config")["auto_pay_delay_s"] == before["auto_pay_delay_s"]


def test_a_full_flow_that_fails_still_puts_auto_pay_back(stack: Stack) -> None:
    before = stack.control("GET", "config")

    done = _full_flow(stack, "--fulfil-timeout", "0.001")  # every flow gives up waiting: a failed run

    assert done.returncode != 0, done.stdout + done.stderr
    assert stack.control("GET", "config")["auto_pay_delay_s"] == before["auto_pay_delay_s"]
