"""`orderpay dev` on a terminal logs one readable line per request, honouring ORDERPAY_LOG_LEVEL
(a real process whose stderr is a pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from clients.bench.procs import free_port
from clients.client import OrderPayClient
from clients.errors import OrderPayError
from tests.support.stack import ROOT, STARTUP_S
from tests.support.waiting import wait_until

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Terminal:
    """What the process wrote to its terminal, read continuously so it never blocks on a full pty."""

    fd: int
    chunks: list[bytes] = field(default_factory=list)

    def pump(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 4096)
            except OSError:  # the other side closed
                return
            if not data:
                return
            self.chunks.append(data)

    def text(self) -> str:
        return ANSI.sub("", b"".join(self.chunks).decode(errors="replace")).replace("\r", "")


@dataclass
class Dev:
    grpc: str
    notify: str
    terminal: Terminal


@pytest.fixture(scope="module")
def dev_on_a_terminal(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dev]:
    """One `orderpay dev` per log level for the module (a start-up is most of each test's time): the
    tests sharing one find their own lines by their own trace ids."""
    level: str = request.param
    tmp_path = tmp_path_factory.mktemp(f"dev-{level}")
    grpc_port, notify_port, sandbox_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "ORDERPAY_GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
        "ORDERPAY_NOTIFY_LISTEN": f"127.0.0.1:{notify_port}",
        "ORDERPAY_METRICS_LISTEN": "127.0.0.1:0",
        "ORDERPAY_NOTIFY_URL": f"http://127.0.0.1:{notify_port}/wxpay/notify",
        "ORDERPAY_LOG_LEVEL": level,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("ORDERPAY_LOG_FORMAT", None)
    parent, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "dev", "--sandbox-listen", f"127.0.0.1:{sandbox_port}"],
        cwd=tmp_path, env=env, stdout=child, stderr=child, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(child)
    terminal = Terminal(parent)
    reader = threading.Thread(target=terminal.pump, daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: "dev stack is up" in terminal.text(),
            STARTUP_S,
            "the dev banner",
            child=process,
            output=terminal.text,
        )
        yield Dev(f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{notify_port}", terminal)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        reader.join(timeout=10)
        os.close(parent)


@pytest.mark.parametrize("dev_on_a_terminal", ["info"], indirect=True)
def test_each_request_is_one_readable_line(dev_on_a_terminal: Dev) -> None:
    with OrderPayClient(dev_on_a_terminal.grpc, token="dev-bff-token") as client:
        client.list_plans(trace_id="trace-plans-1")

    def the_line() -> str:
        return next(
            (ln for ln in dev_on_a_terminal.terminal.text().splitlines() if "trace-plans-1" in ln), ""
        )

    wait_until(lambda: the_line() != "", 10, "the request's log line")
    line = the_line()
    assert re.match(r"^\d\d:\d\d:\d\d \[info\s*\] rpc VipService/ListPlans code=OK duration_ms=[\d.]+ ", line)
    assert "request_id=trace-plans-1" in line
    assert "{" not in line  # not JSON on a terminal


@pytest.mark.parametrize("dev_on_a_terminal", ["info"], indirect=True)
def test_an_error_line_carries_its_reason(dev_on_a_terminal: Dev) -> None:
    """Not only the code: a missing order and a missing product are both NOT_FOUND."""
    with (
        OrderPayClient(dev_on_a_terminal.grpc, token="dev-bff-token") as client,
        pytest.raises(OrderPayError),
    ):
        client.get_order("ord_nope", trace_id="trace-missing-1")

    def the_line() -> str:
        return next(
            (ln for ln in dev_on_a_terminal.terminal.text().splitlines() if "trace-missing-1" in ln), ""
        )

    wait_until(lambda: the_line() != "", 10, "the failed request's log line")
    line = the_line()
    assert " code=NOT_FOUND " in line, line
    assert " reason=ORDER_NOT_FOUND" in line, line


@pytest.mark.parametrize("dev_on_a_terminal", ["warning"], indirect=True)
def test_the_level_setting_is_honoured(dev_on_a_terminal: Dev) -> None:
    with OrderPayClient(dev_on_a_terminal.grpc, token="dev-bff-token") as client:
        client.list_plans(trace_id="trace-plans-2")
    # A warning logged after the call: once it is on the terminal, the call's info line would be too.
    assert httpx.post(f"{dev_on_a_terminal.notify}/wxpay/notify", content=b"garbage").status_code >= 400

    wait_until(lambda: "[warning" in dev_on_a_terminal.terminal.text(), 10, "the sidecar's warning")
    assert "trace-plans-2" not in dev_on_a_terminal.terminal.text()
