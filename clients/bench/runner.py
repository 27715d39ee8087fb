"""`orderpay bench`: start the stack and the bare servers, run B1–B7, print and write the results."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from clients.bench import cases
from clients.bench.cases import Bench
from clients.bench.feed import b8_event_feed
from clients.bench.model import CaseResult, Sizes
from clients.bench.parked import b7_parked
from clients.bench.postgres import b5_two_processes
from clients.bench.procs import Proc
from clients.bench.replicated import b5_replicated
from clients.bench.report import bench_table, machine, notes_lines, write_json
from clients.bench.stack import ServerSpec, init_keys, start_echo, start_sandbox, start_server

AUTO_PAY_DELAY_S = 0.05
CaseRun = Callable[[Bench], Awaitable[CaseResult]]


def run_bench(
    sizes: Sizes, *, quick: bool, json_out: Path, console: Console, only: set[str] | None = None
) -> list[CaseResult]:
    started, wall = datetime.now(UTC), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="orderpay-bench-") as tmp:
        results = _with_stack(Path(tmp), sizes, console, only)
    results.sort(key=lambda case: case.case_id)
    flags = (" --quick" if quick else "") + (f" --only {','.join(sorted(only))}" if only else "")
    title = f"orderpay bench{flags} · {machine()['cpu']} · {machine()['cores']} cores"
    console.print(bench_table(results, title))
    for line in notes_lines(results):
        console.print(line, highlight=False, markup=False)
    document: dict[str, Any] = {
        "started_at": started.isoformat(),
        "duration_s": round(time.monotonic() - wall, 1),
        "quick": quick,
        "machine": machine(),
        "sizes": sizes.__dict__,
        "cases": [case.to_json() for case in results],
    }
    write_json(json_out, document)
    console.print(f"wrote {json_out} ({document['duration_s']} s)")
    return results


def _with_stack(workdir: Path, sizes: Sizes, console: Console, only: set[str] | None) -> list[CaseResult]:
    procs: list[Proc] = []
    try:
        keys = init_keys(workdir / "keys")
        sandbox = _started(procs, start_sandbox(workdir, keys, auto_pay_delay_s=AUTO_PAY_DELAY_S))
        database_url = f"sqlite:///{workdir / 'orderpay.db'}"
        spec = ServerSpec(database_url, keys, sandbox.endpoints["url"])
        server = _started(procs, start_server(workdir, spec, need_sidecar=True))
        echo_grpc = _started(procs, start_echo(workdir, "grpc"))
        echo_aio = _started(procs, start_echo(workdir, "grpc-aio"))
        echo_http = _started(procs, start_echo(workdir, "http", keys_dir=keys))
        bench = Bench(workdir, keys, sizes, database_url, sandbox, server, echo_grpc, echo_aio, echo_http)
        return asyncio.run(_run_cases(bench, console, only))
    finally:
        for proc in reversed(procs):
            proc.stop()


def _started(procs: list[Proc], proc: Proc) -> Proc:
    procs.append(proc)
    return proc


async def _run_cases(bench: Bench, console: Console, only: set[str] | None) -> list[CaseResult]:
    # B6 reads the server's memory after B1–B4 and while B7's waiters are parked; B5 adds B7's
    # cross-process half on its PostgreSQL pair.
    rss_after_b1_b4: list[float] = []

    async def note_rss(bench: Bench) -> CaseResult:
        rss_after_b1_b4.append(bench.server.rss_mb())
        return CaseResult("-", "", "")

    async def b6(bench: Bench) -> CaseResult:
        return cases.b6_memory(bench, rss_after_b1_b4[0])

    order: list[tuple[str, CaseRun]] = [
        ("B1", cases.b1_create_unique),
        ("B2", cases.b2_duplicate_storm),
        ("B3", cases.b3_notify_storm),
        ("B4", cases.b4_full_flow),
        ("-", note_rss),
        ("B7", b7_parked),
        ("B8", b8_event_feed),
        ("B6", b6),
        ("B5", b5_two_processes),
        ("B5R", b5_replicated),  # B5 on a primary + synchronous standby (pg_auto_failover), then without it
    ]
    results = []
    for case_id, run in order:
        if case_id == "-":
            await run(bench)
            continue
        if only is not None and case_id not in only:
            continue
        console.log(f"{case_id} running")
        result = await _guarded(case_id, run, bench)
        console.log(f"{case_id} {_short(result)}")
        results.append(result)
    return results


async def _guarded(case_id: str, run: CaseRun, bench: Bench) -> CaseResult:
    """A case that breaks is reported as such; the other cases still run."""
    try:
        return await run(bench)
    except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others' figures
        return CaseResult(case_id, "error", "", notes=[f"broken: {type(exc).__name__}: {exc}"])


def _short(case: CaseResult) -> str:
    verdict = {True: "pass", False: "FAIL", None: "skipped"}[case.passed]
    figures = ", ".join(f"{row.subject} {row.rate or row.value}" for row in case.rows)
    return f"{verdict}: {figures}"
