"""The daily reconciliation job: after 10:00 Asia/Shanghai, reconcile yesterday (and catch up on the
few days before it that never finished), retrying `STATEMENT_CREATING` later, idempotent per day.

Every process may run it: the day's run row is claimed in the database, so one process reconciles a
day and the others skip it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import structlog

from server.domain.clock import Clock
from server.domain.errors import InvalidStateTransitionError, ProviderUnavailableError
from server.domain.reconciliation import BEIJING
from server.service.ports import DayReconciler
from server.service.reconciliation import BillNotReadyError
from server.service.shapes import JobResult

log = structlog.get_logger("orderpay.jobs")

READY_AT = time(10, 5)  # WeChat: fetch day D's bills after 10:00 on D+1; a few minutes' margin
RETRY_AFTER = timedelta(minutes=10)  # STATEMENT_CREATING or WeChat down: ask again this much later
CATCH_UP_DAYS = 3  # days before yesterday a fresh start still reconciles, if they never finished
FINISHED = {"DONE", "EMPTY"}
OBSERVE_EVERY = timedelta(seconds=30)  # refresh the gauges from the database this often


class ReconTask:
    name = "recon"

    def __init__(self, service: DayReconciler, clock: Clock) -> None:
        self._service = service
        self._clock = clock
        self._finished: set[date] = set()
        self._next_try: dict[date, datetime] = {}
        self._observed_at: datetime | None = None

    def due_days(self, now: datetime) -> list[date]:
        local = now.astimezone(BEIJING)
        yesterday = local.date() - timedelta(days=1)
        if local.time() < READY_AT:
            yesterday -= timedelta(days=1)  # yesterday's bill is not ready; the day before's is
        days = [yesterday - timedelta(days=n) for n in range(CATCH_UP_DAYS, -1, -1)]
        return [d for d in days if d not in self._finished and self._next_try.get(d, now) <= now]

    def run_once(self) -> JobResult:
        now = self._clock()
        if self._observed_at is None or now - self._observed_at >= OBSERVE_EVERY:
            self._observed_at = now
            self._service.observe()
        items = errors = 0
        for day in self.due_days(now):
            if self._service.report(day).summary.status in FINISHED:
                self._finished.add(day)
                continue
            items += 1
            try:
                report = self._service.run_day(day)
            except InvalidStateTransitionError:  # another process is reconciling it right now
                continue
            except (BillNotReadyError, ProviderUnavailableError) as error:
                errors += 1
                self._next_try[day] = now + RETRY_AFTER
                log.warning("recon.deferred", bill_date=day.isoformat(), error=error.message)
                continue
            self._finished.add(day)
            if not report.clean:
                log.warning("recon.open_exceptions", bill_date=day.isoformat(), open=len(report.open))
        return JobResult(items=items, errors=errors)

    def oldest_due(self) -> datetime | None:
        days = self.due_days(self._clock())
        if not days:
            return None
        return datetime.combine(days[0] + timedelta(days=1), READY_AT, tzinfo=BEIJING)
