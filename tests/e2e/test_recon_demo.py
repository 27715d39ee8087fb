"""`orderpay demo --recon` beside a running `orderpay dev`: a purchase, a partial refund, the sandbox clock
moved to 10:00 the next day and a reconciled day, all on a throwaway stack of its own; the running stack's
sandbox clock, orders, timelines and reconciliation are exactly as before. Then the sandbox clock CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from clients.bench.procs import free_port
from clients.client import OrderPayClient
from tests.support.stack import ROOT, STARTUP_S
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # orderpay dev, the demo and the recon CLI, each a process
BEIJING = timezone(timedelta(hours=8))


def test_the_recon_demo_leaves_the_running_stack_as_it_was(tmp_path: Path) -> None:
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
        gateway = {"ORDERPAY_WXPAY_BASE_URL": sandbox_url}
        day = datetime.now(BEIJING).date().isoformat()
        clock_before = httpx.get(f"{sandbox_url}/sandbox/v1/clock").json()
        recon_before = orderpay("recon", "run", "--date", day, extra=gateway)

        demo = orderpay("demo", "--recon", "--user-id", "recon-demo")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "reconciled, nothing open" in demo.stdout
        assert "bill rows 2 · matched 2" in demo.stdout  # the payment and the partial refund
        assert "¥9.00 of ¥18.00" in demo.stdout

        # The shared stack: its sandbox clock did not move, the demo's orders are not in its database,
        # reconciling a day there answers as before, and an order made now is dated now.
        clock_after = httpx.get(f"{sandbox_url}/sandbox/v1/clock").json()
        assert clock_after["offset_s"] == clock_before["offset_s"] == 0
        with OrderPayClient(f"127.0.0.1:{grpc_port}", "dev-admin-token") as admin:
            assert list(admin.list_orders("recon-demo").orders) == []
        recon_after = orderpay("recon", "run", "--date", day, extra=gateway)
        assert (recon_after.returncode, recon_after.stdout) == (recon_before.returncode, recon_before.stdout)
        assert "REFUND_MISSING_REMOTE" not in recon_after.stdout + recon_after.stderr
        with OrderPayClient(f"127.0.0.1:{grpc_port}", "dev-bff-token") as bff:
            created = bff.create_order("after-the-demo", "vip-month").order.created_at.ToDatetime(UTC)
        assert abs((created - datetime.now(UTC)).total_seconds()) < 600, created

        clock = orderpay("sandbox", "clock", "advance", "26h", "--url", sandbox_url)
        assert clock.returncode == 0, clock.stderr
        assert "offset +" in clock.stdout
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(timeout=30)
    assert code == 0, log.read_text()[-2000:]
