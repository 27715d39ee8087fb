"""Reconciling one Beijing day of N paid orders (10 % of them partly refunded): time and peak memory.

    python -m clients.bench.recon_day --orders 10000 [--database-url postgresql://…]

Seeds the sandbox's state and orderpay's tables directly (the figure is about reconciliation, not about
creating 10,000 orders through the API), then times `ReconciliationService.run_day` end to end: apply,
download and gunzip both bills over loopback HTTP, verify the hashes, store files and lines, read the
local records, match, store. The sandbox runs in this process (a thread), so the wall time includes it
rendering the bills; its share is measured on its own. Peak memory: tracemalloc's peak over the run
(the whole process, sandbox included) and the peak of parsing + matching alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from sandbox.api.validation import parse_prepay, parse_refund
from sandbox.app import make_app, serve_in_thread
from sandbox.bills.render import Layout, render_fundflow_bill, render_trade_bill, trade_rows
from sandbox.config import Faults, SandboxConfig
from sandbox.engine.clock import SandboxClock
from sandbox.engine.state import SANDBOX
from sandbox.keys.bundle import init_bundle, load_credentials
from server.adapters.db import bind, make_database, migrate
from server.adapters.recon_store import PeeweeReconStore
from server.adapters.tables import OrderRow, RefundRow
from server.adapters.times import to_db_time
from server.adapters.unit_of_work import read_only_factory, unit_of_work_factory
from server.domain.reconciliation import BEIJING, Window, reconcile
from server.domain.routing import DEFAULT_ACCOUNT
from server.log_setup import configure_logging
from server.service.reconciliation import ReconciliationService
from server.wxpay.bills import WeChatBills, parse_trade_bill
from server.wxpay.client import WeChatPayClient
from server.wxpay.credentials import load_credentials as load_merchant

BATCH = 500


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--trace-memory", action="store_true", help="tracemalloc over run_day (slows it)")
    args = parser.parse_args()
    configure_logging("json", "warning")
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database_url or f"sqlite:///{scratch}/bench.db"
        result = run(args.orders, url, Path(scratch), trace=args.trace_memory)
    print(json.dumps(result, indent=2))
    return 0


def run(orders: int, database_url: str, scratch: Path, *, trace: bool) -> dict[str, Any]:
    keys = scratch / "keys"
    init_bundle(keys)
    day = datetime.now(UTC).astimezone(BEIJING).date() - timedelta(days=2)
    clock = SandboxClock(start=datetime.combine(day, clock_time(9, 0), tzinfo=BEIJING))
    config = SandboxConfig(credentials=load_credentials(keys), faults=Faults(notify_drop_rate=1.0))
    server = serve_in_thread(make_app(config, clock))
    db = make_database(database_url, pool_size=8)
    bind(db)
    migrate(db)
    client = WeChatPayClient(load_merchant(keys), server.base_url, timeout=120)
    try:
        seeded = time.perf_counter()
        _seed(server.app[SANDBOX], db, orders, clock)
        seed_s = time.perf_counter() - seeded
        clock.set(datetime.combine(day + timedelta(days=1), clock_time(10, 0, 1), tzinfo=BEIJING))
        service = ReconciliationService(
            unit_of_work_factory(db),
            read_only_factory(db),
            clock,
            {DEFAULT_ACCOUNT: WeChatBills(client)},
            None,
        )
        render_s = _sandbox_render_seconds(server.app[SANDBOX], day)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        report = service.run_day(day)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        tracemalloc.stop()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        match_s, match_peak = _parse_and_match(db, day, client)
    finally:
        client.shutdown()
        server.stop()
        close_all = getattr(db, "close_all", None)
        if close_all is not None:
            close_all()
    return {
        "orders": orders,
        "database": database_url.split(":", 1)[0],
        "bill_rows": report.summary.bill_rows,
        "matched": report.summary.matched,
        "exceptions": len(report.exceptions),
        "run_day_s": round(elapsed, 2),
        "of_which_sandbox_rendering_s": round(render_s, 2),
        "parse_and_match_only_s": round(match_s, 3),
        "tracemalloc_peak_run_day_mb": round(peak / 2**20, 1) if trace else None,
        "tracemalloc_peak_parse_and_match_mb": round(match_peak / 2**20, 1),
        "max_rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
        "max_rss_mb": round(rss_after / 1024, 1),
        "seed_s": round(seed_s, 1),
    }


def _seed(sandbox: Any, db: Any, orders: int, clock: SandboxClock) -> None:
    """Pay N orders at the sandbox (its backend, no HTTP) and write the same N as paid locally."""
    creds = sandbox.credentials
    order_rows: list[dict[str, Any]] = []
    refund_rows: list[dict[str, Any]] = []
    for n in range(orders):
        no = f"BN{n:08d}{secrets.token_hex(6)}"
        total = 100 + n % 5000
        body = {
            "appid": creds.appid,
            "mchid": creds.mchid,
            "description": "VIP 月卡",
            "out_trade_no": no,
            "notify_url": "http://127.0.0.1:9/notify",
            "amount": {"total": total, "currency": "CNY"},
        }
        sandbox.backend.prepay(parse_prepay("native", json.dumps(body).encode()))
        trade, _ = sandbox.backend.pay(no)
        order_rows.append(_order_row(no, total, trade.transaction_id, trade.success_time))
        if n % 10 == 0:
            rno = "R" + no
            request = {
                "out_trade_no": no,
                "out_refund_no": rno,
                "amount": {"refund": total // 2, "total": total, "currency": "CNY"},
            }
            refund, _ = sandbox.backend.refund(parse_refund(json.dumps(request).encode()))
            sandbox.backend.settle_refund(rno, "SUCCESS")
            refund_rows.append(_refund_row(no, rno, refund.refund_id, total, refund.create_time, clock()))
    with db.connection_context(), db.atomic():
        for start in range(0, len(order_rows), BATCH):
            OrderRow.insert_many(order_rows[start : start + BATCH]).execute()
        for start in range(0, len(refund_rows), BATCH):
            RefundRow.insert_many(refund_rows[start : start + BATCH]).execute()


def _order_row(no: str, total: int, transaction_id: str, paid_at: datetime) -> dict[str, Any]:
    now = to_db_time(paid_at)
    return {
        "order_id": "ord_" + no[-24:],
        "out_trade_no": no,
        "user_id": "bench-" + no,
        "request_id": no,
        "fingerprint": "bench",
        "product_id": "vip-month",
        "kind": "VIP",
        "quantity": 1,
        "total_fee": total,
        "description": "VIP 月卡",
        "status": "PAID",
        "fulfilment": "SUCCEEDED",
        "expires_at": now,
        "transaction_id": transaction_id,
        "paid_fee": total,
        "pay_channel": "NATIVE",
        "created_at": now,
        "updated_at": now,
        "paid_at": now,
    }


def _refund_row(
    no: str, rno: str, refund_id: str, total: int, created: datetime, now: datetime
) -> dict[str, Any]:
    return {
        "out_refund_no": rno,
        "order_id": "ord_" + no[-24:],
        "refund_id": refund_id,
        "amount": total // 2,
        "order_total": total,
        "status": "SUCCESS",
        "submitted": True,
        "created_at": to_db_time(created - timedelta(milliseconds=5)),  # just before WeChat accepted it
        "updated_at": to_db_time(now),
        "succeeded_at": to_db_time(now),
    }


def _sandbox_render_seconds(sandbox: Any, day: Any) -> float:
    started = time.perf_counter()
    trades, refunds = sandbox.backend.snapshot()
    render_trade_bill(trade_rows(trades, refunds, day, sandbox.settings.faults_for), "ALL", Layout())
    render_fundflow_bill(trades, refunds, day, sandbox.settings.faults_for, Layout())
    return time.perf_counter() - started  # both bills, as the two apply calls render them


def _parse_and_match(db: Any, day: Any, client: WeChatPayClient) -> tuple[float, int]:
    """orderpay's side alone: parse the stored file, read the locals, match (no HTTP, no writes)."""
    store = PeeweeReconStore()
    with db.connection_context():
        content = store.file(day, DEFAULT_ACCOUNT, "TRADE")
        assert content is not None  # noqa: S101 - run_day stored it
        tracemalloc.start()
        started = time.perf_counter()
        rows = parse_trade_bill(content)
        window = Window.of(day)
        payments = store.local_payments(
            [r.out_trade_no for r in rows], [r.transaction_id for r in rows], window
        )
        backs = [r for r in rows if r.out_refund_no]
        refunds = store.local_refunds([r.out_refund_no for r in backs], [r.refund_id for r in backs], window)
        outcome = reconcile(rows, payments, refunds, window)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert not outcome.differences, outcome.differences[:3]  # noqa: S101
    del client
    return elapsed, peak


if __name__ == "__main__":
    raise SystemExit(main())
