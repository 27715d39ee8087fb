"""B5R: B5 on a replicated PostgreSQL (a pg_auto_failover formation: primary + synchronous standby),
then on the same primary once its standby is gone, in the same run.

Two `orderpay serve` processes on the formation's multi-host URL take the same unique-key CreateOrder
load twice: with the synchronous standby (every COMMIT waits for the standby's flush), then after the
standby's node is killed and the monitor has turned synchronous replication off (wait_primary). Both
rows carry orderpay's CPU per call, the formation's PostgreSQL CPU per order (primary, standby and
monitor: every process under their postmasters), throughput and p99; the notes add the WAL written
per order and the standby's replay lag at the end of the replicated run. Skipped, and said so, when
pg_autoctl is not installed (`make pg-ha`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg2

from clients.bench.cases import Bench, invariants_clean, row
from clients.bench.drivers import CREATE_ORDER, Cpu, create_order_payload, drive_grpc_raw
from clients.bench.formation import Formation, Node, available, running_formation, wait_until
from clients.bench.model import CaseResult, Row
from clients.bench.procs import BFF_TOKEN, Proc, process_cpu_s
from clients.bench.stack import ServerSpec, start_server
from clients.loadtest.harness import Plan, Summary
from clients.loadtest.invariants import Expected


async def b5_replicated(bench: Bench) -> CaseResult:
    s = bench.sizes
    case = CaseResult(
        "B5R",
        f"B5 on a replicated PostgreSQL: 2 processes, {s.b5_count:,} unique keys with the synchronous "
        "standby, then on the same primary without it",
        "exactly one order per key; CPU per order, throughput and p99 with and without the standby",
    )
    why = available()
    if why is not None:
        case.notes.append(f"skipped: {why}")
        return case
    with running_formation() as formation:
        procs: list[Proc] = []
        try:
            await _measure(bench, case, formation, procs)
        finally:
            for proc in procs:
                proc.stop()
    return case


async def _measure(bench: Bench, case: CaseResult, formation: Formation, procs: list[Proc]) -> None:
    for number in (1, 2):
        spec = ServerSpec(
            formation.url, bench.keys_dir, bench.sandbox.endpoints["url"], name=f"ha-server-{number}"
        )
        procs.append(await asyncio.to_thread(start_server, bench.workdir, spec))
    targets = tuple(proc.endpoints["target"] for proc in procs)
    primary = formation.primary()
    assert primary is not None  # noqa: S101 - the formation just reported healthy
    clean = True
    wal_before = _wal_lsn(primary)
    replicated, cpu, pg_us = await _unique_load(bench, formation, procs, targets, "with sync standby")
    wal_bytes = _wal_lsn(primary) - wal_before
    lag = _replay_lag_s(primary)
    clean = invariants_clean(case, replicated[0], formation.url, replicated[1]) and clean
    case.rows.append(row("orderpay ×2, synchronous standby", replicated[0], cpu))
    case.rows.append(Row("  PostgreSQL CPU per order (primary+standby+monitor)", value=f"{pg_us} µs"))

    standby = formation.standby()
    await asyncio.to_thread(formation.kill_node, standby)
    await asyncio.to_thread(
        wait_until, lambda: _sync_names(primary) == "", 120, "the monitor to turn synchronous replication off"
    )
    alone, cpu_alone, pg_alone = await _unique_load(bench, formation, procs, targets, "primary alone")
    clean = invariants_clean(case, alone[0], formation.url, alone[1]) and clean
    case.rows.append(row("orderpay ×2, primary alone (standby lost)", alone[0], cpu_alone))
    case.rows.append(Row("  PostgreSQL CPU per order (primary+monitor)", value=f"{pg_alone} µs"))
    per_order = wal_bytes / replicated[0].ok if replicated[0].ok else 0
    case.notes += [
        f"WAL per order (replicated run): {per_order / 1024:.1f} KiB ({wal_bytes / 2**20:.1f} MiB"
        f" for {replicated[0].ok:,} orders)",
        f"standby replay lag at the end of the replicated run: {lag * 1000:.1f} ms",
        "the single-primary B5 (shared server) is in case B5; 'primary alone' is the same instance as the"
        " replicated run, so the difference is the synchronous standby alone",
    ]
    case.passed = clean


async def _unique_load(
    bench: Bench, formation: Formation, procs: list[Proc], targets: tuple[str, ...], label: str
) -> tuple[tuple[Summary, Expected], Cpu, float | None]:
    s = bench.sizes
    plan = Plan(s.b5_count, s.concurrency, s.b5_duration_s)
    config = bench.load_config(plan)
    run = drive_grpc_raw(
        f"orderpay ×2, {label}",
        targets,
        BFF_TOKEN,
        plan,
        method=CREATE_ORDER,
        payload=create_order_payload(config),
    )
    nodes = [*formation.nodes, formation.monitor]
    server_before = sum(proc.cpu_s() for proc in procs)
    pg_before = _formation_cpu_s(nodes)
    summary = await run
    server_used = sum(proc.cpu_s() for proc in procs) - server_before
    pg_used = _formation_cpu_s(nodes) - pg_before
    pg_us = round(pg_used * 1e6 / summary.ok, 1) if summary.ok else None
    return (summary, Expected(config.user_prefix, orders=summary.ok)), Cpu(server_used, pg_used), pg_us


def _formation_cpu_s(nodes: list[Node]) -> float:
    """CPU seconds so far of every postmaster of the formation and its children (backends, WAL
    sender/receiver, startup, checkpointer...)."""
    postmasters = {pid for pid in (node.postmaster_pid() for node in nodes) if pid is not None}
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            pid = int(entry.name)
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            if pid in postmasters or parent in postmasters:
                total += process_cpu_s(pid)
        except (OSError, ValueError):
            continue  # exited meanwhile
    return total


def _scalar(node: Node, sql: str) -> object:
    conn = psycopg2.connect(node.url, connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            row_ = cur.fetchone()
            return row_[0] if row_ else None
    finally:
        conn.close()


def _wal_lsn(node: Node) -> int:
    return int(str(_scalar(node, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).split(".")[0])


def _replay_lag_s(node: Node) -> float:
    value = _scalar(node, "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication")
    return float(str(value))


def _sync_names(node: Node) -> str:
    return str(_scalar(node, "SHOW synchronous_standby_names"))
