"""The bench table (figures, ratios, bars, verdicts) and the JSON document, with the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import grpc
from rich.markup import escape
from rich.table import Table

from clients.bench.model import CaseResult, Row


def machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_mb": _memory_mb(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "grpcio": grpc.__version__,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def bench_table(cases: list[CaseResult], title: str) -> Table:
    table = Table(title=title, header_style="bold", show_lines=True)
    table.add_column("case", no_wrap=True)
    table.add_column("subject")
    for column in ("ok/s", "p50 ms", "p99 ms", "CPU µs/call", "ratio"):
        table.add_column(column, justify="right")
    table.add_column("bar")
    table.add_column("verdict", no_wrap=True)
    for case in cases:
        for index, row in enumerate(case.rows or [Row("-")]):
            first = index == 0
            table.add_row(
                f"{case.case_id}" if first else "",
                escape(row.subject),
                *_figures(row),
                f"{case.ratio:.2f}" if first and case.ratio is not None else "",
                escape(case.bar) if first else "",
                _verdict(case) if first else "",
            )
    return table


def _figures(row: Row) -> list[str]:
    if row.summary is None:
        return [row.value, "", "", ""]
    s = row.summary
    rate = row.rate if row.rate is not None else s.throughput
    cpu = f"{row.cpu_us:,.0f}" if row.cpu_us is not None else ""
    return [f"{rate:,.0f}", f"{s.p50_ms:.1f}", f"{s.p99_ms:.1f}", cpu]


def _verdict(case: CaseResult) -> str:
    if case.passed is None:
        return "[yellow]skipped[/]"
    return "[green]pass[/]" if case.passed else "[bold red]FAIL[/]"


def notes_lines(cases: list[CaseResult]) -> list[str]:
    ratios = [f"{case.case_id} {case.ratio_of}" for case in cases if case.ratio_of]
    notes = [f"{case.case_id}: {note}" for case in cases for note in case.notes]
    return ["ratio = " + "; ".join(ratios), *notes]


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
