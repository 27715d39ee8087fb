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
    b4_concurrency: int = 16  # each flow holds a server thread in GetOrder(wait_ms)
    b5_count: int = 5_000
    b5_duration_s: float = 10.0


FULL = Sizes()
QUICK = Sizes(
    b1_count=1_000, b1_duration_s=4.0, b2_keys=200, b3_notifications=300, b4_orders=100, b5_count=1_000,
    b5_duration_s=4.0,
)  # fmt: skip


@dataclass
class Row:
    """One measured subject of a case: orderpay, or the bare server next to it."""

    subject: str
    summary: Summary | None = None
    rate: float | None = None  # the figure compared (work items or calls per second)
    value: str = ""  # a figure that is not a rate (B6's megabytes)

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "rate": self.rate,
            "value": self.value,
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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [row.to_json() for row in self.rows]
        return data


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)
