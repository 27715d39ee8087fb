"""The bench's rounds summary: each figure of issue 23's table as min / median / max over rounds."""

from __future__ import annotations

from clients.bench.model import CaseResult
from clients.bench.rounds import summary


def _round(cpu_ratio: float, echo_us: float, pg_server_us: float | None = None) -> dict[str, CaseResult]:
    b1 = CaseResult("B1", "", "", figures={"CPU ÷ baseline": cpu_ratio, "baseline CPU µs/call": echo_us})
    b1.figures["CPU ÷ baseline @ log_level=warning"] = cpu_ratio - 0.1
    found = {"B1": b1}
    if pg_server_us is not None:
        found["B5"] = CaseResult("B5", "", "", figures={"server CPU µs/order": pg_server_us})
    return found


def test_every_round_is_kept_and_the_median_decides_the_bar() -> None:
    rows = {row["figure"]: row for row in summary([_round(1.7, 500), _round(1.5, 400), _round(1.4, 500)])}
    cpu = rows["B1 SQLite: server CPU per CreateOrder ÷ sync echo"]
    assert (cpu["rounds"], cpu["min"], cpu["median"], cpu["max"]) == ([1.7, 1.5, 1.4], 1.4, 1.5, 1.7)
    assert cpu["holds"] is True  # median 1.5 ≤ 1.6, although one round missed
    assert "B1 SQLite CPU ÷ sync echo @ log_level=warning" in rows  # a variant run beside is reported
    assert not any(str(name).startswith("PostgreSQL") for name in rows)  # not measured: left out


def test_postgres_cpu_is_divided_by_the_sync_echo_of_the_same_round() -> None:
    rows = {row["figure"]: row for row in summary([_round(2.0, 500, 1500), _round(2.0, 250, 1000)])}
    pg = rows["PostgreSQL (B5, 2 processes): server CPU per order ÷ sync echo"]
    assert pg["rounds"] == [3.0, 4.0]
    assert pg["holds"] is False  # median 3.5 > 2.5
