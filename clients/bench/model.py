"""What a benchmark case produces, and the sizes of a full and a quick run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from clients.loadtest.harness import Summary


@dataclass(frozen=True)
class Sizes:
    concurrency: int = 64
    b1_count: int = 5_000
    b1_duration_s: float = 10.0
    b2_keys: int = 1_000
    b2_duplicates: int = 20
    b3_notifications: int = 2_000
    b3_copies: int = 3
    b4_orders: int = 1_000
    b4_concurrency: int = 16  # buyers mid-checkout at once (a parked GetOrder costs the server nothing)
    b5_keys: int = 1_000  # duplicate storm on two processes
    b5_duplicates: int = 20
    b5_count: int = 5_000  # unique keys on two processes, for CPU per order
    b5_duration_s: float = 10.0
    b7_waiters: int = 1_000
    b7_wait_ms: int = 20_000
    b7_park_window_s: float = 3.0  # how long the parked-CPU figure is measured over


FULL = Sizes()
QUICK = Sizes(
    b1_count=1_000, b1_duration_s=4.0, b2_keys=200, b3_notifications=300, b4_orders=100, b5_keys=200,
    b5_count=1_000, b5_duration_s=4.0, b7_waiters=200, b7_park_window_s=1.0,
)  # fmt: skip


@dataclass
class Row:
    """One measured subject of a case: orderpay, or the bare server next to it."""

    subject: str
    summary: Summary | None = None
    rate: float | None = None  # the figure compared (work items or calls per second)
    value: str = ""  # a figure that is not a rate (B6's megabytes)
    cpu_us: float | None = None  # the server's CPU per call (process CPU time / calls), microseconds

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "rate": self.rate,
            "value": self.value,
            "cpu_us_per_call": self.cpu_us,
            "summary": None if self.summary is None else self.summary.to_json(),
        }


@dataclass
class CaseResult:
    case_id: str
    title: str
    bar: str
    rows: list[Row] = field(default_factory=list)
    ratio: float | None = None
    ratio_of: str = ""  # what the ratio divides, e.g. "orderpay / echo"
    passed: bool | None = None  # None: skipped or broken, see notes
    notes: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)  # what the rounds summary aggregates

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [row.to_json() for row in self.rows]
        return data


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)
