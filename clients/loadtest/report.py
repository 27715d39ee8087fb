"""What a load run prints: a progress bar while it runs, then the figures and the invariant verdicts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from clients.console import fits
from clients.loadtest.harness import ProgressHook, Summary, Tick
from clients.loadtest.invariants import InvariantReport


@contextmanager
def progress_bar(console: Console, label: str, total: int) -> Iterator[ProgressHook]:
    """The bar, done/total, the live rate of successful calls, the errors so far, elapsed and ETA."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>6.0f} ok/s"),
        TextColumn("[red]{task.fields[errors]} errors[/]"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total, rate=0.0, errors=0)
        started = time.perf_counter()

        def update(tick: Tick) -> None:
            elapsed = time.perf_counter() - started
            rate = tick.ok / elapsed if elapsed > 0 else 0.0
            progress.update(task, completed=tick.done, rate=rate, errors=tick.errors)

        yield update


SUMMARY_COLUMNS = (
    "items",
    "calls",
    "ok",
    "errors",
    "elapsed s",
    "ok/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
)


def summary_view(summary: Summary, console: Console) -> Table:
    """One row of figures when it fits the console, else one figure per line."""
    table = summary_table(summary)
    return table if fits(console, table) else summary_stacked(summary)


def summary_table(summary: Summary) -> Table:
    table = Table(title=f"loadtest {summary.name}", show_header=True, header_style="bold")
    for column in SUMMARY_COLUMNS:
        table.add_column(column, justify="right", no_wrap=True)
    table.add_row(*_figures(summary))
    return table


def summary_stacked(summary: Summary) -> Table:
    table = Table(title=f"loadtest {summary.name}", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right", no_wrap=True)
    for name, value in zip(SUMMARY_COLUMNS, _figures(summary), strict=True):
        table.add_row(name, value)
    return table


def _figures(summary: Summary) -> list[str]:
    # No successful call, no latency: a dash, never a 0.0 ms that reads like a very fast server.
    latencies = (summary.p50_ms, summary.p95_ms, summary.p99_ms, summary.max_ms)
    return [
        str(summary.items),
        str(summary.calls),
        str(summary.ok),
        str(sum(summary.errors.values())),
        f"{summary.elapsed_s:.2f}",
        f"{summary.throughput:,.0f}",
        *(f"{ms:.1f}" if summary.ok else "-" for ms in latencies),
    ]


def errors_table(summary: Summary) -> Table:
    table = Table(title="errors by reason", header_style="bold")
    table.add_column("reason")
    table.add_column("count", justify="right")
    for reason, count in summary.errors.items():
        table.add_row(reason, str(count))
    return table


def invariants_table(report: InvariantReport) -> Table:
    """One line per check when piped; on a terminal the rule wraps at words in the last column."""
    table = Table(title="database invariants", header_style="bold")
    table.add_column("check", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("rule / examples", ratio=1)
    for result in report.results:
        verdict = "[green]ok[/]" if result.ok else f"[bold red]FAILED ×{result.violations}[/]"
        detail = result.says if result.ok else f"{result.says}: " + "; ".join(result.examples)
        table.add_row(result.name, verdict, escape(detail))
    return table
