"""`orderpay demo --recon`: the purchase demo, then a partial refund, the sandbox clock moved to 10:00
the next day (Beijing), `orderpay recon run` for the day, and the report read back over the admin API."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, time, timedelta, timezone

import grpc
import httpx

from clients.client import OrderPayClient
from clients.demo import run_demo, step
from clients.views import yuan
from orderpay.v1 import recon_service_pb2, recon_service_pb2_grpc

BEIJING = timezone(timedelta(hours=8))


def run_recon_demo(target: str, token: str, sandbox_url: str, user_id: str, plan_id: str) -> int:
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
    ready = datetime.combine(day + timedelta(days=1), time(10, 0, 1), tzinfo=BEIJING)
    httpx.post(
        f"{sandbox_url}/sandbox/v1/clock", json={"now": ready.isoformat()}, timeout=5
    ).raise_for_status()
    step(9, "sandbox clock", f"moved to {ready.isoformat()}: the bills of {day} exist now")
    run = subprocess.run(  # noqa: S603 - our own CLI, as an operator would run it
        [sys.executable, "-m", "clients.cli", "recon", "run", "--date", day.isoformat()],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ORDERPAY_WXPAY_BASE_URL": sandbox_url},  # the stack's gateway is this sandbox
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
    offset_h = (ready - datetime.now(BEIJING)).total_seconds() / 3600
    print(
        f"note: the sandbox clock stays {offset_h:+.1f} h ahead (the sandbox clock never goes back, so a bill"
        " once served stays served). `orderpay dev` follows it, so orderpay and the sandbox agree on the"
        " date; restart `make run` to come back to today.",
        flush=True,
    )
    return 0 if report.clean and run.returncode == 0 else 3
