"""B5: two `orderpay serve` processes sharing one fresh PostgreSQL database.

Proven correct under the duplicate storm (each key's copies alternate between the processes), then
measured on unique keys: server CPU per call, PostgreSQL's CPU per order (every local `postgres`
process), and from those a capacity table. Two processes on two shared cores cannot show scaling;
CPU per call can, because throughput per process is bounded by one core ÷ CPU per call.

The processes listen on two ports and the harness spreads calls over them (one channel each):
`serve --workers N` shares one port via SO_REUSEPORT, but the kernel balances by connection.
The same pair then runs B7 across processes: waiters on the first, payments through the second.
"""

from __future__ import annotations

import math
import uuid

import psycopg2
from psycopg2 import sql

from clients.bench.cases import Bench, duplicate_storm, invariants_clean, row
from clients.bench.drivers import CREATE_ORDER, create_order_payload, drive_grpc_raw, metered
from clients.bench.model import CaseResult, Row
from clients.bench.parked import metrics_url, park_and_wake, verdict
from clients.bench.procs import BFF_TOKEN, Proc
from clients.bench.stack import ServerSpec, start_server
from clients.loadtest.harness import Plan
from clients.loadtest.invariants import Expected

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
MIN_SCALE = 1.6


def create_database() -> str:
    """A new, empty database for this run; its URL."""
    name = f"orderpay_bench_{uuid.uuid4().hex[:8]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{PG_SERVER}/{name}"


def drop_database(database_url: str) -> None:
    name = database_url.rsplit("/", 1)[1]
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _admin(statement: sql.Composed) -> None:
    connection = psycopg2.connect(f"{PG_SERVER}/postgres", connect_timeout=3)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


UTILISATION = 0.7  # plan processes and cores to run at 70 %: headroom for p99 and for a failure
TARGETS = (1_000, 5_000)  # orders per second


async def b5_two_processes(bench: Bench) -> CaseResult:
    s = bench.sizes
    case = CaseResult(
        "B5",
        f"2 processes on PostgreSQL: {s.b5_keys:,} keys × {s.b5_duplicates} duplicates, then "
        f"{s.b5_count:,} unique",
        "exactly one order per key; CPU per call and PostgreSQL CPU per order reported",
    )
    try:
        database_url = create_database()
    except psycopg2.OperationalError as exc:
        case.notes.append(f"skipped: PostgreSQL not reachable ({str(exc).strip()})")
        return case
    procs: list[Proc] = []
    try:
        await _measure(bench, case, database_url, procs)
    finally:
        for proc in procs:
            proc.stop()
        drop_database(database_url)
    return case


async def _measure(bench: Bench, case: CaseResult, database_url: str, procs: list[Proc]) -> None:
    s = bench.sizes
    for number in (1, 2):
        spec = ServerSpec(
            database_url, bench.keys_dir, bench.sandbox.endpoints["url"], name=f"pg-server-{number}"
        )
        procs.append(start_server(bench.workdir, spec, need_sidecar=True))  # in turn: the first migrates
    targets = tuple(proc.endpoints["target"] for proc in procs)
    storm_plan = Plan(s.b5_keys, max(1, s.concurrency // s.b5_duplicates))
    storm_config = bench.load_config(storm_plan)
    (storm, split), storm_cpu = await metered(
        procs,
        duplicate_storm("orderpay ×2", targets, storm_config, storm_plan, s.b5_duplicates),
        postgres=database_url,
    )
    unique_plan = Plan(s.b5_count, s.concurrency, s.b5_duration_s)
    unique_config = bench.load_config(unique_plan)
    run = drive_grpc_raw(
        "orderpay ×2",
        targets,
        BFF_TOKEN,
        unique_plan,
        method=CREATE_ORDER,
        payload=create_order_payload(unique_config),
    )
    unique, cpu = await metered(procs, run, postgres=database_url)
    pg_per_order = cpu.postgres_per_call_us(unique.ok)
    pg_all_per_order = cpu.postgres_all_per_call_us(unique.ok)
    case.rows = [
        row("duplicate storm, 2 processes", storm, storm_cpu),
        row("unique keys, 2 processes", unique, cpu),
        Row(
            "PostgreSQL CPU per new order (the backends of this database)",
            value=f"{pg_per_order} µs" if pg_per_order else "not visible",
        ),
        Row(
            "every local postgres process per new order (upper bound: other databases' work too)",
            value=f"{pg_all_per_order} µs" if pg_all_per_order else "not visible",
        ),
        Row("PostgreSQL CPU per duplicate call", value=f"{storm_cpu.postgres_per_call_us(storm.calls)} µs"),
    ]
    case.notes.append(f"split keys (one key, two order ids): {split}")
    clean = invariants_clean(case, storm, database_url, Expected(storm_config.user_prefix, orders=s.b5_keys))
    clean = (
        invariants_clean(case, unique, database_url, Expected(unique_config.user_prefix, orders=unique.ok))
        and clean
    )
    server_us = cpu.per_call_us(unique.calls)
    case.notes += capacity_lines(server_us, pg_per_order)
    case.figures = {
        name: value
        for name, value in (
            ("server CPU µs/order", server_us),
            ("PostgreSQL CPU µs/order", pg_per_order),
            ("every postgres process CPU µs/order", pg_all_per_order),
        )
        if value is not None
    }
    case.passed = clean and not split
    await _b7_across(bench, procs)


def capacity_lines(server_us: float | None, postgres_us: float | None) -> list[str]:
    """Processes (one core each: the GIL) and PostgreSQL cores for TARGETS at UTILISATION."""
    if not server_us:
        return []
    per_order = f"{server_us:.0f} µs server + {postgres_us or 0:.0f} µs PostgreSQL CPU per order"
    lines = [f"capacity at {UTILISATION:.0%} utilisation, from {per_order}:"]
    for rate in TARGETS:
        processes = math.ceil(rate * server_us / 1e6 / UTILISATION)
        cores = math.ceil(rate * (postgres_us or 0) / 1e6 / UTILISATION * 10) / 10
        lines.append(f"  {rate:,} orders/s: {processes} server processes, {cores} PostgreSQL cores")
    return lines


async def _b7_across(bench: Bench, procs: list[Proc]) -> None:
    case = bench.b7_case
    if case is None:
        return
    s = bench.sizes
    waiter, notifier = procs
    label = "PostgreSQL, waiters on process 1, payments via process 2"
    result = await park_and_wake(
        waiter=waiter,
        waiter_metrics_url=metrics_url(waiter),
        notifier_notify_url=notifier.endpoints["notify_url"],
        config=bench.load_config(Plan(s.b7_waiters, 32)),
        count=s.b7_waiters,
        wait_ms=s.b7_wait_ms,
        window_s=s.b7_park_window_s,
    )
    case.rows += result.rows(label)
    case.figures["wake p99 ms after ack, across processes"] = result.p99(result.wake_after_ack_ms)
    case.passed = verdict(result, case.notes, label) and bool(case.passed)
