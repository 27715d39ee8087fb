"""A small scheduler: each task on its own daemon thread, every run one log line and two metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import structlog

from server.domain.clock import Clock
from server.metrics import JOB_LAG, JOB_RUNS
from server.service.ports import Task
from server.service.shapes import JobResult

log = structlog.get_logger("orderpay.jobs")


class JobRunner:
    """Runs each task every `interval_s` until stopped; a full batch runs again at once."""

    def __init__(self, tasks: Sequence[Task], clock: Clock, interval_s: float) -> None:
        self._tasks = list(tasks)
        self._clock = clock
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def task_names(self) -> list[str]:
        return [task.name for task in self._tasks]

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("JobRunner already started")
        for task in self._tasks:
            thread = threading.Thread(target=self._loop, args=(task,), name=f"job:{task.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("jobs.started", jobs=self.task_names, interval_s=self._interval_s)

    def stop(self, grace: float) -> None:
        """Ask every loop to stop and wait up to `grace` seconds; a run in flight finishes its item."""
        self._stop.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = self.alive()
        if alive:
            log.warning("jobs.stop_timeout", still_running=alive, grace_s=grace)
            return
        for task in self._tasks:  # what a task holds open (the webhook sender's connections)
            close = getattr(task, "close", None)
            if close is not None:
                close()
        log.info("jobs.stopped")

    def alive(self) -> list[str]:
        return [thread.name for thread in self._threads if thread.is_alive()]

    def run_all_once(self) -> dict[str, JobResult]:
        """One pass of every task on the calling thread (dev tools and tests)."""
        return {task.name: self.run_task(task) for task in self._tasks}

    def _loop(self, task: Task) -> None:
        while not self._stop.is_set():
            result = self.run_task(task)
            if not result.more:
                self._stop.wait(self._interval_s)

    def run_task(self, task: Task) -> JobResult:
        started = time.perf_counter()
        try:
            result = task.run_once()
        except Exception:  # a broken run must not kill the loop; the next run retries
            log.exception("job.crashed", job=task.name)
            result = JobResult(items=0, errors=1)
        lag_s = self._lag(task)
        JOB_RUNS.labels(task.name, result.outcome).inc()
        JOB_LAG.labels(task.name).set(lag_s)
        emit = log.info if result.items or result.errors else log.debug
        emit(
            "job.run",
            job=task.name,
            items=result.items,
            errors=result.errors,
            outcome=result.outcome,
            lag_s=round(lag_s, 3),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return result

    def _lag(self, task: Task) -> float:
        try:
            oldest = task.oldest_due()
        except Exception:  # lag is a gauge; a failed read must not fail the run
            log.exception("job.lag_failed", job=task.name)
            return 0.0
        return 0.0 if oldest is None else max(0.0, (self._clock() - oldest).total_seconds())
