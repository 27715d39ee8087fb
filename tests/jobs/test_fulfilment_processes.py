"""Two worker processes on one database (SQLite file and PostgreSQL): every order fulfilled once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

from server.app import App
from tests.jobs.helpers import grants_for, membership_expiry, paid_order

ROOT = Path(__file__).resolve().parents[2]


def test_two_processes_fulfil_each_order_exactly_once(jobs_app: App, rid: str) -> None:
    orders = [paid_order(jobs_app, f"u-{rid}-{i}", "vip-month") for i in range(20)]
    ids = [order.order_id for order in orders]
    command = [sys.executable, "-m", "tests.jobs.worker_process", jobs_app.settings.database_url, *ids]
    workers = [
        subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for worker in workers:  # both are up and waiting on stdin: release them together
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = [worker.communicate(timeout=60)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    totals: Counter[str] = Counter()
    for output in results:
        totals.update(json.loads(output))
    assert totals["succeeded"] == len(orders)
    assert totals["failed"] == totals["retry"] == 0
    for order in orders:
        assert len(grants_for(jobs_app, order.order_id)) == 1
        expires = membership_expiry(jobs_app, order.user_id)
        assert expires is not None
        assert timedelta(days=30) <= expires - order.created_at < timedelta(days=30, minutes=5)
