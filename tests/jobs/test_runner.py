"""JobRunner: the standard jobs fulfil in the background, a crashing job keeps its loop, stop is prompt."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from server.app import App
from server.domain.events import OrderPaid
from server.domain.order import Fulfilment
from server.jobs.scheduler import JobRunner
from server.jobs.standard import build_jobs
from server.metrics import REGISTRY
from server.service.handlers import Reactors, fulfil_promptly
from server.service.shapes import JobResult
from tests.jobs.helpers import paid_order
from tests.support.waiting import wait_until


def job_runs(job: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("orderpay_job_runs_total", {"job": job, "outcome": outcome}) or 0.0


class CountingTask:
    def __init__(self, name: str, fail: bool = False, block: threading.Event | None = None) -> None:
        self.name = name
        self.runs = 0
        self._fail = fail
        self._block = block

    def run_once(self) -> JobResult:
        self.runs += 1
        if self._block is not None:
            self._block.wait(30)
        if self._fail:
            raise RuntimeError("boom")
        return JobResult(items=0)

    def oldest_due(self) -> datetime | None:
        return None


def test_standard_jobs_fulfil_a_paid_order_and_stop_cleanly(jobs_app: App, rid: str) -> None:
    order = paid_order(jobs_app, f"u-{rid}", "vip-month")  # paid before the hook is wired: the job must do it
    runner = build_jobs(jobs_app)
    assert {"fulfilment", "expiry", "reconcile", "refunds", "notifications", "recon"} <= set(
        runner.task_names
    )
    before = job_runs("fulfilment", "ok")
    runner.start()
    try:
        wait_until(lambda: jobs_app.orders.get_order(order.order_id).fulfilment is Fulfilment.SUCCEEDED)
        wait_until(lambda: job_runs("fulfilment", "ok") > before)
    finally:
        started = time.monotonic()
        runner.stop(5.0)
    assert time.monotonic() - started < 5.0
    assert runner.alive() == []


def test_order_paid_reaction_fulfils_at_once(jobs_app: App, rid: str) -> None:
    order = paid_order(jobs_app, f"u-{rid}", "vip-year")  # the conftest's App leaves it to the job
    assert jobs_app.orders.get_order(order.order_id).fulfilment is Fulfilment.PENDING
    assert jobs_app.payments is not None
    reactors = Reactors(fulfilment=jobs_app.payments.fulfilment)  # what bootstrap builds by default
    fulfil_promptly(OrderPaid(order.order_id, order.kind.value), reactors)
    assert jobs_app.orders.get_order(order.order_id).fulfilment is Fulfilment.SUCCEEDED


def test_a_crashing_job_keeps_running_and_is_counted(jobs_app: App) -> None:
    task = CountingTask("boom-test", fail=True)
    runner = JobRunner([task], jobs_app.clock, interval_s=0.01)
    before = job_runs("boom-test", "error")
    runner.start()
    try:
        wait_until(lambda: task.runs >= 3)
    finally:
        runner.stop(2.0)
    assert runner.alive() == []
    assert job_runs("boom-test", "error") - before >= 3


def test_stop_gives_up_after_the_grace_period(jobs_app: App) -> None:
    release = threading.Event()
    task = CountingTask("stuck-test", block=release)
    runner = JobRunner([task], jobs_app.clock, interval_s=0.01)
    runner.start()
    try:
        wait_until(lambda: task.runs == 1)
        started = time.monotonic()
        runner.stop(0.2)
        # It waited its grace period, then gave up on the stuck task (which would otherwise hold it forever).
        assert 0.15 <= time.monotonic() - started < 10.0
        assert runner.alive() == ["job:stuck-test"]
    finally:
        release.set()
    wait_until(lambda: runner.alive() == [])
    assert task.runs == 1  # stopped: no run after the one in flight
