"""`orderpay demo --recon`: on a throwaway stack of its own, the purchase demo, then a partial refund,
the sandbox clock moved to 10:00 the next day (Beijing), `orderpay recon run` for the day, and the report
read back over the admin API.

Why a stack of its own: WeChat Pay has one clock and it only goes forward (a bill once served stays
served), and the sandbox plays it so. A demo that moves that clock a day and more ahead cannot give the
time back honestly: winding it back would un-serve a bill and date payments in the future. So it does
not touch the shared one: it starts `orderpay dev` (sandbox, SQLite, free ports) in a temporary
directory, moves that sandbox's clock, and throws the whole world away when it ends. `make run`'s
sandbox clock, orders, timelines and reconciliation stay exactly as they were.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from datetime import time as time_of_day
from pathlib import Path

import grpc
import httpx

from clients.client import OrderPayClient
from clients.demo import run_demo, step
from clients.views import yuan
from orderpay.v1 import recon_service_pb2, recon_service_pb2_grpc

BEIJING = timezone(timedelta(hours=8))
DEV_ADMIN_TOKEN = "dev-admin-token"  # noqa: S105 - the public dev token of server/config.py
DEV = (sys.executable, "-m", "clients.cli", "dev")
START_S = 120.0  # a loaded 2-core laptop takes a while to make keys and start Python twice


def run_isolated_recon_demo(user_id: str, plan_id: str) -> int:
    """The reconciliation demo on a private `orderpay dev` that is stopped and deleted afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="orderpay-recon-demo-") as workdir,
        _private_stack(Path(workdir)) as (target, sandbox_url, env),
    ):
        step(0, "own stack", f"orderpay dev at {target}, sandbox {sandbox_url} (temporary, {workdir})")
        code = run_recon_demo(target, DEV_ADMIN_TOKEN, sandbox_url, user_id, plan_id, env=env)
    print(
        "note: the demo ran on a throwaway stack and moved only its own sandbox clock (WeChat Pay's clock"
        " never goes back, so a moved one cannot be shared); `make run`'s sandbox, orders and"
        " reconciliation are untouched.",
        flush=True,
    )
    return code


@contextmanager
def _private_stack(workdir: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """`orderpay dev` on free loopback ports with its own keys and database; nothing inherited from the
    caller's ORDERPAY_* settings (they describe the shared stack)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERPAY_")}
    env.update(
        ORDERPAY_DATABASE_URL=f"sqlite:///{workdir / 'orderpay.db'}",
        ORDERPAY_CREDENTIALS_DIR=str(workdir / "keys"),
        ORDERPAY_GRPC_LISTEN="127.0.0.1:0",
        ORDERPAY_NOTIFY_LISTEN="127.0.0.1:0",
        ORDERPAY_METRICS_LISTEN="",
        ORDERPAY_CONSOLE_LISTEN="",
        ORDERPAY_LOG_LEVEL="warning",
    )
    ports_file, log_path = workdir / "ports.json", workdir / "dev.log"
    with log_path.open("wb") as log:
        dev = subprocess.Popen(  # noqa: S603 - our own CLI
            [*DEV, "--sandbox-listen", "127.0.0.1:0", "--ports-file", str(ports_file)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        ports = _wait_ports(dev, ports_file, log_path)
        sandbox_url = str(ports["sandbox"])
        yield str(ports["grpc_target"]), sandbox_url, {**env, "ORDERPAY_WXPAY_BASE_URL": sandbox_url}
    finally:
        if dev.poll() is None:
            dev.send_signal(signal.SIGINT)
            try:
                dev.wait(timeout=30)
            except subprocess.TimeoutExpired:
                dev.kill()
                dev.wait()


def _wait_ports(dev: subprocess.Popen[bytes], ports_file: Path, log_path: Path) -> dict[str, object]:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if dev.poll() is not None:
            raise SystemExit(f"orderpay: the demo's own stack exited ({dev.returncode}):\n{_tail(log_path)}")
        if ports_file.exists():
            ports: dict[str, object] = json.loads(ports_file.read_text(encoding="utf-8"))
            return ports
        time.sleep(0.05)  # polling a child's readiness
    raise SystemExit(f"orderpay: the demo's own stack did not start in {START_S:g} s:\n{_tail(log_path)}")


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])


def run_recon_demo(
    target: str, token: str, sandbox_url: str, user_id: str, plan_id: str, env: dict[str, str]
) -> int:
    """The steps, against the stack at `target` whose sandbox is `sandbox_url` (it moves that clock);
    `env`: the settings of that stack, for `orderpay recon run`."""
    code = run_demo(target, token, sandbox_url, user_id, plan_id, manual=False)
    if code != 0:
        return code
    with OrderPayClient(target, token) as client:
        (order,) = client.list_orders(user_id, page_size=1).orders  # the one the demo just bought
        refund = client.refund_order(
            order.order_id, "RD" + uuid.uuid4().hex[:16], order.total_fee // 2, "demo"
        )
        step(8, "partial refund", f"{refund.out_refund_no}: {yuan(refund.amount)} of {yuan(order.total_fee)}")
    now = datetime.fromisoformat(httpx.get(f"{sandbox_url}/sandbox/v1/clock", timeout=5).json()["now"])
    day = now.astimezone(BEIJING).date()
    ready = datetime.combine(day + timedelta(days=1), time_of_day(10, 0, 1), tzinfo=BEIJING)
    httpx.post(
        f"{sandbox_url}/sandbox/v1/clock", json={"now": ready.isoformat()}, timeout=5
    ).raise_for_status()
    step(9, "sandbox clock", f"moved to {ready.isoformat()}: the bills of {day} exist now")
    run = subprocess.run(  # noqa: S603 - our own CLI, as an operator would run it
        [sys.executable, "-m", "clients.cli", "recon", "run", "--date", day.isoformat()],
        capture_output=True,
        text=True,
        check=False,
        env=env,  # the stack's database, keys and gateway (this sandbox)
    )
    step(10, "orderpay recon run", f"--date {day} (exit {run.returncode})")
    print(run.stdout.rstrip() or run.stderr.rstrip(), flush=True)
    with grpc.insecure_channel(target) as channel:
        stub = recon_service_pb2_grpc.ReconServiceStub(channel)
        report = stub.GetReconReport(
            recon_service_pb2.GetReconReportRequest(bill_date=day.isoformat()),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        ).report
    verdict = (
        "reconciled, nothing open" if report.clean else f"{len(report.exceptions)} exception(s) to look at"
    )
    counts = f"{report.matched}/{report.bill_rows} rows matched"
    step(11, "ReconService (gRPC)", f"{report.bill_date} {report.status}, {counts}, {verdict}")
    return 0 if report.clean and run.returncode == 0 else 3
