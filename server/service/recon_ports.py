"""The reconciliation use case's shapes: what it returns and stores (ports: server.service.ports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from server.domain.reconciliation import ExceptionKind, ExceptionStatus

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
    status: str  # DONE | EMPTY (WeChat had no statement for the day) | RUNNING
    trade_sha1: str | None
    fund_sha1: str | None
    bill_rows: int
    matched: int
    deferred: int
    totals: DayTotals = field(default_factory=DayTotals)
    finished_at: datetime | None = None


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


@dataclass(frozen=True)
class DayReport:
    bill_date: date
    summary: RunSummary
    exceptions: list[ReconException]

    @property
    def repaired(self) -> int:
        return sum(1 for e in self.exceptions if e.status is ExceptionStatus.REPAIRED)

    @property
    def open(self) -> list[ReconException]:
        return [e for e in self.exceptions if e.status is ExceptionStatus.OPEN]

    @property
    def clean(self) -> bool:
        """Nothing left but matched rows and exceptions already repaired or resolved."""
        return self.summary.status in {"DONE", "EMPTY"} and not self.open
