"""`orderpay purge`: only never-paid CLOSED orders older than the cutoff go, with their audit rows."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.adapters.repositories import to_db_time
from server.adapters.tables import OrderEventRow, OrderRow
from server.app import App
from server.domain.feed import FeedFilter
from server.jobs.purge import parse_duration, purge_closed_unpaid
from tests.jobs.helpers import BFF, MovableClock, paid_order, unpaid_order

ROOT = Path(__file__).resolve().parents[2]


def exists(app: App, order_id: str) -> bool:
    with app.db.connection_context():
        return OrderRow.select().where(OrderRow.order_id == order_id).exists()


def event_count(app: App, order_id: str) -> int:
    with app.db.connection_context():
        return OrderEventRow.select().where(OrderEventRow.order_id == order_id).count()


def test_purge_deletes_only_old_never_paid_closed_orders(
    jobs_app: App, clock: MovableClock, rid: str
) -> None:
    old_closed = unpaid_order(jobs_app, f"u-{rid}-1", "vip-month")
    jobs_app.orders.close_order(old_closed.order_id, BFF)
    old_paid = paid_order(jobs_app, f"u-{rid}-2", "vip-month")
    old_unpaid = unpaid_order(jobs_app, f"u-{rid}-3", "vip-year")
    clock.advance(timedelta(days=4))
    cutoff = clock() - timedelta(days=3)
    recent_closed = unpaid_order(jobs_app, f"u-{rid}-4", "vip-month")
    jobs_app.orders.close_order(recent_closed.order_id, BFF)

    dry = purge_closed_unpaid(jobs_app.uow, cutoff, dry_run=True)
    assert dry.orders >= 1
    assert dry.events >= 2  # created + closed
    assert exists(jobs_app, old_closed.order_id)

    report = purge_closed_unpaid(jobs_app.uow, cutoff)
    assert (report.orders, report.events) == (dry.orders, dry.events)
    assert not exists(jobs_app, old_closed.order_id)
    assert event_count(jobs_app, old_closed.order_id) == 0
    for kept in (old_paid, old_unpaid, recent_closed):
        assert exists(jobs_app, kept.order_id)
        assert event_count(jobs_app, kept.order_id) >= 1
    assert purge_closed_unpaid(jobs_app.uow, cutoff).orders == 0


def test_purge_command_in_a_real_process(jobs_app: App, rid: str) -> None:
    order = unpaid_order(jobs_app, f"u-{rid}", "vip-month")
    jobs_app.orders.close_order(order.order_id, BFF)
    long_ago = to_db_time(datetime.now(UTC) - timedelta(days=5))
    with jobs_app.db.connection_context():
        OrderRow.update(closed_at=long_ago).where(OrderRow.order_id == order.order_id).execute()
    subscriber = f"wms-{rid}"
    jobs_app.feed.register(subscriber)
    acked = jobs_app.feed.head() - 1  # the subscriber has not acknowledged the close yet
    jobs_app.feed.ack(subscriber, acked)
    env = {
        **os.environ,
        "ORDERPAY_DATABASE_URL": jobs_app.settings.database_url,
        "ORDERPAY_FEED_RETENTION_DAYS": "0",  # every entry is old enough: only acknowledgements keep one
    }
    script = (
        "import argparse, sys\n"
        "from server.jobs.purge_command import register\n"
        "parser = argparse.ArgumentParser(prog='orderpay')\n"
        "register(parser.add_subparsers(required=True))\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.func(args))\n"
    )

    def purge(*flags: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", script, "purge", "--older-than", "3d", *flags]
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    dry = purge("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 1 orders and 2 order events" in dry.stdout
    assert exists(jobs_app, order.order_id)
    done = purge()
    assert done.returncode == 0, done.stderr
    assert "deleted 1 orders and 2 order events" in done.stdout
    assert not exists(jobs_app, order.order_id)
    assert "event-feed entries" in done.stdout
    unacknowledged = [e.position for e in jobs_app.feed.read(acked, FeedFilter(), 100).events]
    assert unacknowledged == list(range(acked + 1, jobs_app.feed.head() + 1))  # none of them went
    bad = subprocess.run(
        [sys.executable, "-c", script, "purge", "--older-than", "3 weeks"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "bad duration" in bad.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3d", timedelta(days=3)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 2H ", timedelta(hours=2)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "3", "d", "3w", "3d-1h", "three days", "3d 1h"])
def test_parse_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)
