"""The rounds summary: every figure of issue 23's table as min / median / max over the rounds of one
`orderpay bench` run (each round measures orderpay and its bare baselines side by side)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from rich.table import Table

from clients.bench.model import CaseResult

Round = dict[str, CaseResult]  # case id -> its result in one round


@dataclass(frozen=True)
class Figure:
    label: str
    bar: str
    read: Callable[[Round], float | None]
    holds: Callable[[float], bool]


def _figure(case_id: str, name: str) -> Callable[[Round], float | None]:
    def read(found: Round) -> float | None:
        case = found.get(case_id)
        return None if case is None else case.figures.get(name)

    return read


def _pg_cpu_vs_echo(found: Round) -> float | None:
    """B5's server CPU per order over the sync echo's CPU per call measured in B1 of the same round."""
    server, echo = _figure("B5", "server CPU µs/order")(found), _figure("B1", "baseline CPU µs/call")(found)
    return round(server / echo, 3) if server and echo else None


FIGURES = (
    Figure("L1 canonical log line at info: CPU µs per call, writer thread included", "≤ 40",
           _figure("L1", "µs per line"), lambda v: v <= 40),
    Figure("L1 the same line through the structlog processor chain (before)", "",
           _figure("L1", "µs per line, processor chain"), lambda _v: True),
    Figure("B1 SQLite: server CPU per CreateOrder ÷ sync echo", "≤ 1.6", _figure("B1", "CPU ÷ baseline"),
           lambda v: v <= 1.6),
    Figure("B1 SQLite: server CPU µs per CreateOrder", "", _figure("B1", "CPU µs/call"), lambda _v: True),
    Figure("B1 throughput ÷ sync echo", "≥ 0.6", _figure("B1", "throughput ÷ baseline"), lambda v: v >= 0.6),
    Figure("B1 p99 ms at 64 in flight", "≤ 50", _figure("B1", "p99 ms"), lambda v: v <= 50),
    Figure("B2 (20 duplicates per key) throughput ÷ sync echo", "≥ 0.7",
           _figure("B2", "throughput ÷ baseline"), lambda v: v >= 0.7),
    Figure("PostgreSQL (B5, 2 processes): server CPU per order ÷ sync echo", "≤ 2.5", _pg_cpu_vs_echo,
           lambda v: v <= 2.5),
    Figure("PostgreSQL (B5): PostgreSQL CPU µs per order (its database's backends)", "≤ 600",
           _figure("B5", "PostgreSQL CPU µs/order"), lambda v: v <= 600),
    Figure("PostgreSQL (B5): every local postgres process, CPU µs per order (upper bound; shared server)",
           "", _figure("B5", "every postgres process CPU µs/order"), lambda _v: True),
    Figure("B3 notifications/s ÷ bare verify-and-decrypt handler", "≥ 0.3", _figure(
        "B3", "throughput ÷ baseline"), lambda v: v >= 0.3),
    Figure("B3 CPU µs per delivery", "", _figure("B3", "CPU µs/call"), lambda _v: True),
    Figure("B7 wake p99 ms after the notification's ack, SQLite, 100/s storm", "≤ 50", _figure(
        "B7", "wake p99 ms after ack"), lambda v: v <= 50),
    Figure("B7 notification ack p99 ms at 100/s", "", _figure("B7", "notification ack p99 ms"),
           lambda _v: True),
    Figure("B7 wake p99 ms after ack, across processes (PostgreSQL, with B5)", "≤ 50", _figure(
        "B7", "wake p99 ms after ack, across processes"), lambda v: v <= 50),
)  # fmt: skip


def _beside(rounds: list[Round]) -> list[Figure]:
    """B1 and B2 on each variant run beside (`--beside`, `--warning`): CPU and throughput ratios."""
    found_in = [
        (case_id, name)
        for case_id in ("B1", "B2")
        for name in sorted(
            {name for found in rounds if case_id in found for name in found[case_id].figures if " @ " in name}
        )
    ]
    return [
        Figure(f"{case_id} SQLite {name.replace('baseline', 'sync echo')}", "", _figure(case_id, name), _any)
        for case_id, name in found_in
    ]


def _any(_value: float) -> bool:
    return True


def summary(rounds: list[Round]) -> list[dict[str, object]]:
    """Per figure: the value of every round, min / median / max, and whether the median meets its bar."""
    rows: list[dict[str, object]] = []
    for figure in (*FIGURES, *_beside(rounds)):
        values = [v for v in (figure.read(found) for found in rounds) if v is not None]
        if not values:
            continue
        median = statistics.median(values)
        rows.append(
            {
                "figure": figure.label,
                "rounds": values,
                "min": min(values),
                "median": median,
                "max": max(values),
                "bar": figure.bar,
                "holds": figure.holds(median) if figure.bar else None,
            }
        )
    return rows


def summary_table(rows: list[dict[str, object]], title: str) -> Table:
    table = Table(title=title, header_style="bold", show_lines=False)
    for column, justify in (("figure", "left"), ("min / median / max", "right"), ("bar", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("median meets the bar", no_wrap=True)
    for found in rows:
        spread = " / ".join(_number(found[key]) for key in ("min", "median", "max"))
        holds = {True: "[green]yes[/]", False: "[bold red]no[/]", None: ""}[found["holds"]]  # type: ignore[index]
        table.add_row(str(found["figure"]), spread, str(found["bar"]), holds)
    return table


def _number(value: object) -> str:
    assert isinstance(value, float | int)  # noqa: S101 - figures are numbers
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
