"""`orderpay demo --recon` against `orderpay dev`: a purchase, a partial refund, the sandbox clock moved
to 10:00 the next day, and a reconciled day; then `orderpay recon show --json` and the sandbox clock CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from clients.bench.procs import free_port
from clients.client import OrderPayClient
from tests.support.stack import ROOT, STARTUP_S
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # orderpay dev, the demo and the recon CLI, each a process


def test_demo_ends_with_a_reconciled_day(tmp_path: Path) -> None:
    grpc_port, notify_port, sandbox_port = free_port(), free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {
        **os.environ,
        "ORDERPAY_GRPC_LISTEN": f"127.0.0.1:{grpc_port}",
        "ORDERPAY_NOTIFY_LISTEN": f"127.0.0.1:{notify_port}",
        "ORDERPAY_NOTIFY_URL": f"http://127.0.0.1:{notify_port}/wxpay/notify",
        "PYTHONPATH": str(ROOT),
    }

    def orderpay(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clients.cli", *args],
            cwd=tmp_path,
            env={**env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "dev", "--sandbox-listen", f"127.0.0.1:{sandbox_port}"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "dev stack is up" in log.read_text(), STARTUP_S, "the dev banner", child=dev, output=log
        )
        demo = orderpay(
            "demo", "--recon", "--target", f"127.0.0.1:{grpc_port}", "--sandbox-url", sandbox_url,
            "--user-id", "recon-demo",
        )  # fmt: skip
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "reconciled, nothing open" in demo.stdout
        day = next(line for line in demo.stdout.splitlines() if "recon run" in line).split("--date ")[1][:10]

        gateway = {"ORDERPAY_WXPAY_BASE_URL": sandbox_url}
        shown = orderpay("recon", "show", "--date", day, "--json", extra=gateway)
        assert shown.returncode == 0, shown.stderr
        report = json.loads(shown.stdout)
        assert (report["date"], report["status"], report["exceptions"]) == (day, "DONE", [])
        assert report["bill_rows"] == report["matched"] == 2  # the payment and the partial refund
        again = orderpay("recon", "run", "--date", day, "--json", extra=gateway)  # the same day twice
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout) == report

        # The demo moved the sandbox a day and more ahead, and said so; orderpay dev follows the sandbox's
        # clock, so an order made now is dated on the sandbox's day, not on the wall clock's.
        assert "the sandbox clock never goes back" in demo.stdout
        sandbox_now = datetime.fromisoformat(httpx.get(f"{sandbox_url}/sandbox/v1/clock").json()["now"])
        with OrderPayClient(f"127.0.0.1:{grpc_port}", "dev-bff-token") as bff:
            created = bff.create_order("after-the-jump", "vip-month").order.created_at.ToDatetime(UTC)
        assert abs((created - sandbox_now).total_seconds()) < 3600, (created, sandbox_now)

        clock = orderpay("sandbox", "clock", "advance", "26h", "--url", sandbox_url)
        assert clock.returncode == 0, clock.stderr
        assert "offset +" in clock.stdout
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(timeout=30)
    assert code == 0, log.read_text()[-2000:]
