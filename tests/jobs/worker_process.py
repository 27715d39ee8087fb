"""A fulfilment worker in its own process, for the two-process test.

Usage: python -m tests.jobs.worker_process DATABASE_URL ORDER_ID...
Waits for a line on stdin (so both processes start together), then fulfils each order twice over
and runs the periodic pass; prints a JSON count of its outcomes.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter

from server.adapters.db import bind, make_database
from server.adapters.unit_of_work import unit_of_work_factory
from server.domain.clock import utc_now
from server.log_setup import configure_logging
from server.service.fulfilment import FulfilmentWorker
from server.service.handlers import Policy, transactional


def main(argv: list[str]) -> int:
    url, order_ids = argv[0], argv[1:]
    configure_logging("json", "warning")  # stdout carries the result
    db = make_database(url, pool_size=4)
    bind(db)
    worker = FulfilmentWorker(transactional(unit_of_work_factory(db), utc_now, Policy()), utc_now)
    sys.stdin.readline()
    outcomes: Counter[str] = Counter()
    for order_id in random.sample(order_ids * 2, len(order_ids) * 2):
        outcomes[worker.run_for_order(order_id).outcome.value] += 1
    outcomes["run_due_claimed"] += worker.run_due(100).claimed
    print(json.dumps(outcomes))
    db.close_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
