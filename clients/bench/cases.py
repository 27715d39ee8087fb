"""B1–B6 (README § Benchmarks). Each case drives orderpay with the load tester's scenarios and, in the
same run and with the same harness and plan, a bare server; the verdict combines the bar with the database
invariants of the run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from clients.bench.drivers import drive_grpc_echo, drive_http_echo
from clients.bench.model import CaseResult, Row, Sizes, ratio
from clients.bench.procs import BFF_TOKEN, Proc
from clients.loadtest.harness import Plan, Summary
from clients.loadtest.invariants import check_invariants
from clients.loadtest.notifications import NotificationSigner
from clients.loadtest.scenarios import LoadConfig, ScenarioResult, run_scenario

ECHO_NOTES = 64  # distinct signed bodies the bare HTTP handler is sent, round-robin
MAX_P99_B1_MS = 50.0
MAX_P99_B4_MS = 1_000.0
MIN_NOTIFY_RATE = 1_000.0
MAX_RSS_MB = 250.0


@dataclass
class Bench:
    """The processes B1–B4 and B6 share (B5 starts its own on PostgreSQL)."""

    workdir: Path
    keys_dir: Path
    sizes: Sizes
    database_url: str
    sandbox: Proc
    server: Proc
    echo_grpc: Proc
    echo_http: Proc

    def load_config(
        self, plan: Plan, targets: tuple[str, ...] | None = None, **changes: object
    ) -> LoadConfig:
        config = LoadConfig(
            targets=targets or (self.server.endpoints["target"],),
            token=BFF_TOKEN,
            plan=plan,
            sandbox_url=self.sandbox.endpoints["url"],
            notify_url=self.server.endpoints.get("notify_url", ""),
            credentials_dir=self.keys_dir,
            run_id=uuid.uuid4().hex[:10],
        )
        return replace(config, **changes)  # type: ignore[arg-type]

    @property
    def echo_target(self) -> str:
        return self.echo_grpc.endpoints["target"]


def scenario_verdict(bench: Bench, result: ScenarioResult, case: CaseResult, database_url: str = "") -> bool:
    """Invariants and client-side problems go into the notes; True when all are clean."""
    report = check_invariants(database_url or bench.database_url, result.expected)
    case.notes += result.problems
    case.notes += [f"invariant {r.name} FAILED: {'; '.join(r.examples)}" for r in report.failed]
    if result.summary.errors:
        case.notes.append(f"errors: {result.summary.errors}")
    return report.ok and not result.problems and not result.summary.errors


def _pair(orderpay: Summary, echo: Summary, echo_subject: str = "bare gRPC echo") -> list[Row]:
    return [Row("orderpay", orderpay, orderpay.throughput), Row(echo_subject, echo, echo.throughput)]


async def b1_create_unique(bench: Bench) -> CaseResult:
    s = bench.sizes
    case = CaseResult(
        "B1", f"CreateOrder, unique keys, {s.concurrency} concurrent", "≥ 0.5 × echo; p99 ≤ 50 ms"
    )
    plan = Plan(s.b1_count, s.concurrency, s.b1_duration_s)
    result = await run_scenario("create-unique", bench.load_config(plan))
    echo = await drive_grpc_echo("echo", bench.echo_target, BFF_TOKEN, plan)
    case.rows = _pair(result.summary, echo)
    case.ratio, case.ratio_of = ratio(result.summary.throughput, echo.throughput), "orderpay / echo"
    clean = scenario_verdict(bench, result, case)
    case.passed = clean and (case.ratio or 0) >= 0.5 and result.summary.p99_ms <= MAX_P99_B1_MS
    return case


async def b2_duplicate_storm(bench: Bench) -> CaseResult:
    s = bench.sizes
    case = CaseResult(
        "B2",
        f"duplicate storm: {s.b2_keys:,} keys × {s.b2_duplicates} concurrent duplicates",
        f"exactly {s.b2_keys:,} orders; ≥ 0.7 × echo",
    )
    plan = Plan(s.b2_keys, s.concurrency)
    result = await run_scenario("duplicate-storm", bench.load_config(plan, duplicates=s.b2_duplicates))
    keys_in_flight = max(1, s.concurrency // s.b2_duplicates)
    echo_plan = Plan(s.b2_keys, keys_in_flight)
    echo = await drive_grpc_echo("echo", bench.echo_target, BFF_TOKEN, echo_plan, burst=s.b2_duplicates)
    case.rows = _pair(result.summary, echo)
    case.ratio, case.ratio_of = ratio(result.summary.throughput, echo.throughput), "orderpay / echo"
    case.notes.append(f"split keys (one key, two order ids): {result.summary.extra.get('split_keys')}")
    clean = scenario_verdict(bench, result, case)
    case.passed = clean and (case.ratio or 0) >= 0.7
    return case


async def b3_notify_storm(bench: Bench) -> CaseResult:
    s = bench.sizes
    case = CaseResult(
        "B3",
        f"notification storm: {s.b3_notifications:,} paid orders × {s.b3_copies} concurrent deliveries",
        f"exactly {s.b3_notifications:,} fulfilments; ≥ {MIN_NOTIFY_RATE:,.0f} notifications/s",
    )
    if "notify_url" not in bench.server.endpoints:
        case.notes.append("skipped: the server's notify sidecar did not answer /healthz")
        return case
    plan = Plan(s.b3_notifications, s.concurrency)
    result = await run_scenario("notify-storm", bench.load_config(plan, duplicates=s.b3_copies))
    signer = NotificationSigner.from_dir(bench.keys_dir)
    notes = [signer.transaction_success(f"BENCHECHO{i:08d}", 1800) for i in range(ECHO_NOTES)]
    echo_plan = Plan(s.b3_notifications, max(1, s.concurrency // s.b3_copies))
    echo = await drive_http_echo(
        "echo", bench.echo_http.endpoints["url"], notes, echo_plan, burst=s.b3_copies
    )
    case.rows = _pair(result.summary, echo, "bare aiohttp 204")
    case.ratio, case.ratio_of = ratio(result.summary.throughput, echo.throughput), "orderpay / bare aiohttp"
    clean = scenario_verdict(bench, result, case)
    case.passed = clean and result.summary.throughput >= MIN_NOTIFY_RATE
    return case


async def b4_full_flow(bench: Bench) -> CaseResult:
    s = bench.sizes
    case = CaseResult(
        "B4",
        f"full flow (create → prepay → sandbox pays → notify → fulfilled), {s.b4_orders:,} orders",
        "0 lost; p99 pay→fulfilled ≤ 1 s",
    )
    if "notify_url" not in bench.server.endpoints:
        case.notes.append("skipped: the server's notify sidecar did not answer /healthz")
        return case
    plan = Plan(s.b4_orders, s.b4_concurrency)
    result = await run_scenario("full-flow", bench.load_config(plan, fulfil_timeout_s=30.0))
    # The echo makes the flow's three client calls (create, prepay, get) per item; compare items/s.
    echo = await drive_grpc_echo("echo", bench.echo_target, BFF_TOKEN, plan, sequential=3)
    flows, echo_flows = _items_rate(result.summary), _items_rate(echo)
    case.rows = [
        Row("orderpay (latency: pay→fulfilled)", result.summary, flows),
        Row("bare gRPC echo ×3", echo, echo_flows),
    ]
    case.ratio, case.ratio_of = ratio(flows, echo_flows), "flows/s orderpay / echo"
    lost = int(result.summary.extra.get("lost", 0))
    case.notes.append(f"lost: {lost}; outcomes: {result.summary.extra.get('outcomes')}")
    clean = scenario_verdict(bench, result, case)
    case.passed = clean and lost == 0 and result.summary.p99_ms <= MAX_P99_B4_MS
    return case


def b6_memory(bench: Bench) -> CaseResult:
    case = CaseResult("B6", "memory: server RSS after B1–B4", f"≤ {MAX_RSS_MB:.0f} MB")
    server_mb, echo_mb = bench.server.rss_mb(), bench.echo_grpc.rss_mb()
    case.rows = [
        Row("orderpay serve", value=f"{server_mb:.1f} MB"),
        Row("bare gRPC echo", value=f"{echo_mb:.1f} MB"),
    ]
    case.ratio, case.ratio_of = ratio(server_mb, echo_mb), "RSS orderpay / echo"
    case.passed = server_mb <= MAX_RSS_MB
    return case


def _items_rate(summary: Summary) -> float:
    return round(summary.items / summary.elapsed_s, 1) if summary.elapsed_s else 0.0
