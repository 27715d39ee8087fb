"""B5: B1 against one and then two `orderpay serve` processes sharing one fresh PostgreSQL database.

The two processes listen on two ports and the harness spreads calls over them round-robin (one
channel each). `orderpay serve --workers N` shares one port via SO_REUSEPORT, but the kernel then
balances by connection, and a client with one HTTP/2 connection would land on one worker; separate
ports make the split exact and the figure about the server, not about connection hashing.
"""

from __future__ import annotations

import uuid

import psycopg2
from psycopg2 import sql

from clients.bench.cases import Bench, scenario_verdict
from clients.bench.drivers import drive_grpc_echo
from clients.bench.model import CaseResult, Row, ratio
from clients.bench.procs import BFF_TOKEN, Proc
from clients.bench.stack import ServerSpec, start_echo, start_server
from clients.loadtest.harness import Plan
from clients.loadtest.scenarios import run_scenario

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


async def b5_two_processes(bench: Bench) -> CaseResult:
    case = CaseResult(
        "B5",
        "B1 with 2 server processes on PostgreSQL (2 ports, round-robin)",
        f"≥ {MIN_SCALE} × one process",
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
    sizes = bench.sizes
    for number in (1, 2):
        spec = ServerSpec(
            database_url, bench.keys_dir, bench.sandbox.endpoints["url"], name=f"pg-server-{number}"
        )
        procs.append(start_server(bench.workdir, spec))  # one after the other: the first one migrates
    procs.append(start_echo(bench.workdir, "grpc", "echo-grpc-2"))
    first, second, echo_two = (proc.endpoints["target"] for proc in procs)
    plan = Plan(sizes.b5_count, sizes.concurrency, sizes.b5_duration_s)
    one = await run_scenario("create-unique", bench.load_config(plan, targets=(first,)))
    two = await run_scenario("create-unique", bench.load_config(plan, targets=(first, second)))
    echo_one = await drive_grpc_echo("echo ×1", bench.echo_target, BFF_TOKEN, plan)
    echo_both = await drive_grpc_echo("echo ×2", (bench.echo_target, echo_two), BFF_TOKEN, plan)
    case.rows = [
        Row("orderpay ×1 (PostgreSQL)", one.summary, one.summary.throughput),
        Row("orderpay ×2 (PostgreSQL)", two.summary, two.summary.throughput),
        Row("bare gRPC echo ×1", echo_one, echo_one.throughput),
        Row("bare gRPC echo ×2", echo_both, echo_both.throughput),
    ]
    case.ratio, case.ratio_of = ratio(two.summary.throughput, one.summary.throughput), "×2 / ×1"
    case.notes.append(f"echo scales ×{ratio(echo_both.throughput, echo_one.throughput)} on this machine")
    clean = scenario_verdict(bench, one, case, database_url) and scenario_verdict(
        bench, two, case, database_url
    )
    case.passed = clean and (case.ratio or 0) >= MIN_SCALE
