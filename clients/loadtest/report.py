"""What a load run prints: a progress bar while it runs, then the figures and the invariant verdicts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clients.loadtest.harness import ProgressHook, Summary
from clients.loadtest.invariants import InvariantReport


@contextmanager
def progress_bar(console: Console, label: str, total: int) -> Iterator[ProgressHook]:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.update(task, completed=done)


def summary_table(summary: Summary) -> Table:
    table = Table(title=f"loadtest {summary.name}", show_header=True, header_style="bold")
    for column in (
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
    ):
        table.add_column(column, justify="right")
    # No successful call, no latency: a dash, never a 0.0 ms that reads like a very fast server.
    latencies = (summary.p50_ms, summary.p95_ms, summary.p99_ms, summary.max_ms)
    table.add_row(
        str(summary.items),
        str(summary.calls),
        str(summary.ok),
        str(sum(summary.errors.values())),
        f"{summary.elapsed_s:.2f}",
        f"{summary.throughput:,.0f}",
        *(f"{ms:.1f}" if summary.ok else "-" for ms in latencies),
    )
    return table


def errors_table(summary: Summary) -> Table:
    table = Table(title="errors by reason", header_style="bold")
    table.add_column("reason")
    table.add_column("count", justify="right")
    for reason, count in summary.errors.items():
        table.add_row(reason, str(count))
    return table


def invariants_table(report: InvariantReport) -> Table:
    table = Table(title="database invariants", header_style="bold")
    table.add_column("check", no_wrap=True)
    table.add_column("verdict")
    table.add_column("violations", justify="right")
    table.add_column("rule / examples")
    for result in report.results:
        verdict = "[green]ok[/]" if result.ok else "[bold red]FAILED[/]"
        detail = result.says if result.ok else f"{result.says}: " + "; ".join(result.examples)
        table.add_row(result.name, verdict, str(result.violations), escape(detail))
    return table
