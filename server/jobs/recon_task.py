"""The daily reconciliation job: after 10:00 Asia/Shanghai, reconcile yesterday (and catch up on the
few days before it that never finished), retrying `STATEMENT_CREATING` later, idempotent per day.

Every process may run it: the day's run row is claimed in the database, so one process reconciles a
day and the others skip it. Each merchant account's day is its own item (issue 18): one account's bill
not ready, unreachable or malformed backs off that account alone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import structlog

from server.domain.clock import Clock
from server.domain.errors import InvalidStateTransitionError, ProviderUnavailableError
from server.domain.reconciliation import BEIJING, BILL_MALFORMED
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
        self._finished: set[tuple[date, str]] = set()
        self._next_try: dict[tuple[date, str], datetime] = {}
        self._alarmed: set[tuple[date, str]] = set()
        self._observed_at: datetime | None = None

    def due_days(self, now: datetime) -> list[date]:
        return sorted({day for day, _ in self.due(now)})

    def due(self, now: datetime) -> list[tuple[date, str]]:
        """(day, account) pairs to run now, oldest day first."""
        local = now.astimezone(BEIJING)
        yesterday = local.date() - timedelta(days=1)
        if local.time() < READY_AT:
            yesterday -= timedelta(days=1)  # yesterday's bill is not ready; the day before's is
        days = [yesterday - timedelta(days=n) for n in range(CATCH_UP_DAYS, -1, -1)]
        items = [(d, a) for d in days for a in self._service.accounts]
        return [i for i in items if i not in self._finished and self._next_try.get(i, now) <= now]

    def run_once(self) -> JobResult:
        now = self._clock()
        if self._observed_at is None or now - self._observed_at >= OBSERVE_EVERY:
            self._observed_at = now
            self._service.observe()
        items = errors = 0
        for item in self.due(now):
            day, account = item
            if self._service.report(day, account).summary.status in FINISHED:
                self._finished.add(item)
                continue
            items += 1
            try:
                report = self._service.run_day(day, account=account)
            except InvalidStateTransitionError:  # another process is reconciling it right now
                continue
            except (BillNotReadyError, ProviderUnavailableError) as error:
                errors += 1
                self._next_try[item] = now + RETRY_AFTER
                self._alarm_once(item, error)
                continue
            self._finished.add(item)
            if not report.clean:
                log.warning(
                    "recon.open_exceptions", bill_date=day.isoformat(), account=account, open=len(report.open)
                )
        return JobResult(items=items, errors=errors)

    def _alarm_once(
        self, item: tuple[date, str], error: BillNotReadyError | ProviderUnavailableError
    ) -> None:
        """A malformed bill needs a person (WeChat changed the format, or the file is bad): one ERROR
        per day, account and process, not one per retry; anything else is a deferral that fixes itself."""
        day, account = item
        if error.metadata.get("provider_code") != BILL_MALFORMED:
            log.warning("recon.deferred", bill_date=day.isoformat(), account=account, error=error.message)
        elif item not in self._alarmed:
            self._alarmed.add(item)
            log.error("recon.bill_malformed", bill_date=day.isoformat(), account=account, error=error.message)

    def oldest_due(self) -> datetime | None:
        days = self.due_days(self._clock())
        if not days:
            return None
        return datetime.combine(days[0] + timedelta(days=1), READY_AT, tzinfo=BEIJING)
