"""The daily job's schedule on a clock the test moves (a fake reconciler; no sockets, no DB)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from server.domain.reconciliation import BEIJING
from server.jobs.recon_task import CATCH_UP_DAYS, ReconTask
from server.service.recon_ports import DayReport, RunSummary
from server.service.reconciliation import BillNotReadyError


class FakeReconciler:
    """Days of the one account `default`; with `accounts`, each account's day is its own."""

    def __init__(self, accounts: tuple[str, ...] = ("default",)) -> None:
        self.accounts = accounts
        self.finished: dict[tuple[date, str], str] = {}
        self.not_ready: set[tuple[date, str]] = set()
        self.account_runs: list[tuple[date, str]] = []
        self.observed = 0

    @property
    def runs(self) -> list[date]:
        return [day for day, _ in self.account_runs]

    def observe(self) -> None:
        self.observed += 1

    def report(self, day: date, account: str | None = None) -> DayReport:
        status = self.finished.get((day, account or "default"), "NOT_RUN")
        return DayReport(day, RunSummary(status, None, None, 0, 0, 0), [], account)

    def run_day(self, day: date, *, account: str | None = None) -> DayReport:
        name = account or "default"
        self.account_runs.append((day, name))
        if (day, name) in self.not_ready:
            raise BillNotReadyError("still generating")
        self.finished[(day, name)] = "DONE"
        return self.report(day, name)


class Clock:
    def __init__(self, when: datetime) -> None:
        self.now = when

    def __call__(self) -> datetime:
        return self.now


def beijing(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=BEIJING)


def test_before_ten_yesterday_waits_and_the_day_before_is_done() -> None:
    today = date(2026, 3, 10)
    service, clock = FakeReconciler(), Clock(beijing(today, 9, 30))
    ReconTask(service, clock).run_once()
    assert today - timedelta(days=1) not in service.runs
    assert service.runs[-1] == today - timedelta(days=2)
    assert len(service.runs) == CATCH_UP_DAYS + 1


def test_each_day_runs_once_and_statement_creating_is_retried_later() -> None:
    today = date(2026, 3, 10)
    yesterday = today - timedelta(days=1)
    service, clock = FakeReconciler(), Clock(beijing(today, 10, 6))
    service.not_ready.add((yesterday, "default"))
    task = ReconTask(service, clock)
    first = task.run_once()
    assert (first.items, first.errors) == (CATCH_UP_DAYS + 1, 1)
    clock.now += timedelta(minutes=1)
    assert task.run_once().items == 0  # nothing due: the others are done, yesterday waits
    service.not_ready.clear()
    clock.now += timedelta(minutes=10)
    assert task.run_once().items == 1
    assert service.runs.count(yesterday) == 2
    assert task.run_once().items == 0
    assert task.oldest_due() is None
    assert service.observed == 3  # at most once per 30 s: the gauges follow runs made elsewhere


def test_a_day_finished_by_another_process_is_not_run_again() -> None:
    today = date(2026, 3, 10)
    service = FakeReconciler()
    for n in range(1, CATCH_UP_DAYS + 2):
        service.finished[(today - timedelta(days=n), "default")] = "EMPTY"
    ReconTask(service, Clock(beijing(today, 11))).run_once()
    assert service.runs == []


def test_one_accounts_bill_not_ready_backs_off_that_account_alone() -> None:
    today = date(2026, 3, 10)
    yesterday = today - timedelta(days=1)
    service, clock = FakeReconciler(("shop-a", "shop-b", "sub-c")), Clock(beijing(today, 10, 6))
    service.not_ready.add((yesterday, "shop-b"))
    task = ReconTask(service, clock)
    first = task.run_once()
    assert (first.items, first.errors) == (3 * (CATCH_UP_DAYS + 1), 1)
    assert service.finished[(yesterday, "shop-a")] == service.finished[(yesterday, "sub-c")] == "DONE"
    assert (yesterday, "shop-b") not in service.finished
    service.not_ready.clear()
    clock.now += timedelta(minutes=11)
    assert task.run_once().items == 1  # shop-b's yesterday alone
    assert service.account_runs[-1] == (yesterday, "shop-b")
    assert task.oldest_due() is None
