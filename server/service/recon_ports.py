"""The reconciliation use case's shapes: what it returns and stores (ports: server.service.ports)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from server.domain.reconciliation import ExceptionKind, ExceptionStatus
from server.domain.routing import DEFAULT_ACCOUNT

# --- shapes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    token: str
    previous_status: str | None  # None: the day had never finished before this run


@dataclass(frozen=True)
class DayTotals:
    payments_fen: int = 0
    refunds_fen: int = 0
    fees_fen: int = 0
    fund_income_fen: int | None = None
    fund_expense_fen: int | None = None


@dataclass(frozen=True)
class RunSummary:
    status: str  # DONE | EMPTY (WeChat had no statement for the day) | RUNNING | BILL_MALFORMED
    trade_sha1: str | None
    fund_sha1: str | None
    bill_rows: int
    matched: int
    deferred: int
    totals: DayTotals = field(default_factory=DayTotals)
    finished_at: datetime | None = None
    error: str = ""  # why the last run did not finish (BILL_MALFORMED: the line and column)


@dataclass(frozen=True)
class ReconException:
    id: int
    bill_date: date
    kind: ExceptionKind
    out_trade_no: str
    out_refund_no: str
    local_fen: int
    remote_fen: int
    status: ExceptionStatus
    detail: str
    resolution: str
    resolved_by: str
    version: int
    created_at: datetime
    updated_at: datetime
    account: str = DEFAULT_ACCOUNT  # whose bill it was found in (issue 18)


@dataclass(frozen=True)
class DayReport:
    """One account's day; or, `account` None, every account's together, each of them in `parts`."""

    bill_date: date
    summary: RunSummary
    exceptions: list[ReconException]
    account: str | None = None
    parts: tuple[DayReport, ...] = ()

    @property
    def repaired(self) -> int:
        return sum(1 for e in self.exceptions if e.status is ExceptionStatus.REPAIRED)

    @property
    def open(self) -> list[ReconException]:
        return [e for e in self.exceptions if e.status is ExceptionStatus.OPEN]

    @property
    def clean(self) -> bool:
        """Nothing left but matched rows and exceptions already repaired or resolved."""
        if self.parts:
            return all(part.clean for part in self.parts)
        return self.summary.status in FINISHED and not self.open


FINISHED = frozenset({"DONE", "EMPTY"})
# The status a day shows for several accounts: the one most in need of a look.
_WORST_FIRST = ("BILL_MALFORMED", "FAILED", "RUNNING", "NOT_RUN", "DONE", "EMPTY")


def combined(day: date, parts: list[DayReport]) -> DayReport:
    """Every account's report of a day as one: sums added, the worst status, errors named by account."""
    if len(parts) == 1:
        return parts[0]
    statuses = [part.summary.status for part in parts]
    status = min(statuses, key=lambda s: _WORST_FIRST.index(s) if s in _WORST_FIRST else 0)
    if status == "EMPTY" and any(s == "DONE" for s in statuses):
        status = "DONE"
    sums = [part.summary for part in parts]

    def total(get: Callable[[DayTotals], int | None]) -> int | None:
        values = [get(s.totals) for s in sums]
        return None if all(v is None for v in values) else sum(v or 0 for v in values)

    totals = DayTotals(
        sum(s.totals.payments_fen for s in sums),
        sum(s.totals.refunds_fen for s in sums),
        sum(s.totals.fees_fen for s in sums),
        total(lambda t: t.fund_income_fen),
        total(lambda t: t.fund_expense_fen),
    )
    error = "; ".join(f"{part.account}: {part.summary.error}" for part in parts if part.summary.error)
    summary = RunSummary(
        status, None, None, sum(s.bill_rows for s in sums), sum(s.matched for s in sums),
        sum(s.deferred for s in sums), totals, None, error,
    )  # fmt: skip
    exceptions = sorted((e for part in parts for e in part.exceptions), key=lambda e: e.id)
    return DayReport(day, summary, exceptions, None, tuple(parts))
