"""B1–B4 and B6 (README § Benchmarks). Each case drives orderpay and, in the same run with the same raw
`grpc.aio` client and plan, the bare servers; every row carries the server's CPU per call (process
CPU time over calls), and the verdict combines the bar with the database invariants of the run.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from clients.bench.drivers import (
    CREATE_ORDER,
    Cpu,
    Payload,
    create_order_payload,
    drive_grpc_echo,
    drive_grpc_raw,
    drive_http_posts,
    metered,
)
from clients.bench.model import CaseResult, Row, Sizes, ratio
from clients.bench.procs import BFF_TOKEN, Proc
from clients.loadtest.harness import Plan, Summary
from clients.loadtest.invariants import Expected, check_invariants
from clients.loadtest.notifications import NotificationSigner
from clients.loadtest.scenarios import LoadConfig, ScenarioResult, run_scenario
from orderpay.v1 import order_service_pb2

ECHO_NOTES = 64  # distinct signed bodies the bare HTTP handler is sent, round-robin
MAX_P99_B1_MS = 50.0
MAX_CPU_VS_ECHO_B1 = 2.0
MIN_RATIO_B1 = 0.5
MIN_RATIO_B2 = 0.6
MAX_P99_B4_MS = 200.0
MIN_NOTIFY_RATE = 1_000.0
MAX_RSS_MB = 250.0


@dataclass
class Bench:
    """The processes B1–B4, B6 and B7 share (B5 starts its own on PostgreSQL)."""

    workdir: Path
    keys_dir: Path
    sizes: Sizes
    database_url: str
    sandbox: Proc
    server: Proc
    echo_grpc: Proc
    echo_aio: Proc
    echo_http: Proc
    beside: list[tuple[str, Proc]] = field(default_factory=list)  # `--beside`: variants B1 also runs on
    rss_parked_mb: dict[str, float] = field(default_factory=dict)  # B7 fills it for B6
    b7_case: CaseResult | None = None  # B5 adds B7's cross-process half to it

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
    def target(self) -> str:
        return self.server.endpoints["target"]


def invariants_clean(case: CaseResult, summary: Summary, database_url: str, expected: Expected) -> bool:
    report = check_invariants(database_url, expected)
    case.notes += [f"invariant {r.name} FAILED: {'; '.join(r.examples)}" for r in report.failed]
    if summary.errors:
        case.notes.append(f"errors: {summary.errors}")
    return report.ok and not summary.errors


def scenario_verdict(bench: Bench, result: ScenarioResult, case: CaseResult, database_url: str = "") -> bool:
    """Invariants and client-side problems go into the notes; True when all are clean."""
    case.notes += result.problems
    clean = invariants_clean(case, result.summary, database_url or bench.database_url, result.expected)
    return clean and not result.problems


def row(subject: str, summary: Summary, cpu: Cpu, rate: float | None = None, calls: int | None = None) -> Row:
    return Row(
        subject,
        summary,
        summary.throughput if rate is None else rate,
        cpu_us=cpu.per_call_us(summary.calls if calls is None else calls),
    )


async def echo_rows(bench: Bench, plan: Plan, *, burst: int = 1, sequential: int = 1) -> list[Row]:
    """The sync and the grpc.aio echo, each on its own, with the same plan and raw client."""
    rows = []
    for subject, proc in (("gRPC echo, sync", bench.echo_grpc), ("gRPC echo, grpc.aio", bench.echo_aio)):
        target = proc.endpoints["target"]
        run = drive_grpc_echo(subject, target, BFF_TOKEN, plan, burst=burst, sequential=sequential)
        summary, cpu = await metered([proc], run)
        rows.append(row(subject, summary, cpu))
    return rows


def cpu_vs(first: Row, second: Row) -> float | None:
    return ratio(first.cpu_us, second.cpu_us)


def figures(ours: Row, baseline: Row, rate_ratio: float | None, cpu_ratio: float | None) -> dict[str, float]:
    """What the rounds summary aggregates for a case measured against a bare baseline."""
    found = {
        "throughput ÷ baseline": rate_ratio,
        "CPU ÷ baseline": cpu_ratio,
        "CPU µs/call": ours.cpu_us,
        "baseline CPU µs/call": baseline.cpu_us,
        "p99 ms": ours.summary.p99_ms if ours.summary else None,
    }
    return {name: value for name, value in found.items() if value is not None}


async def beside_row(label: str, server: Proc, plan: Plan, payload: Payload) -> Row:
    """The same calls to a variant of the server beside (`--beside SETTING=VALUE`, `--warning`)."""
    target = server.endpoints["target"]
    run = drive_grpc_raw(f"orderpay {label}", target, BFF_TOKEN, plan, method=CREATE_ORDER, payload=payload)
    summary, cpu = await metered([server], run)
    return row(f"orderpay, {label}", summary, cpu)


async def b1_create_unique(bench: Bench) -> CaseResult:
    s = bench.sizes
    case = CaseResult(
        "B1",
        f"CreateOrder, unique keys, {s.concurrency} concurrent",
        f"CPU/call ≤ {MAX_CPU_VS_ECHO_B1} × sync echo; ≥ {MIN_RATIO_B1} × echo; p99 ≤ {MAX_P99_B1_MS:.0f} ms",
    )
    plan = Plan(s.b1_count, s.concurrency, s.b1_duration_s)
    config = bench.load_config(plan)
    run = drive_grpc_raw(
        "orderpay", bench.target, BFF_TOKEN, plan, method=CREATE_ORDER, payload=create_order_payload(config)
    )
    summary, cpu = await metered([bench.server], run)
    ours, *echoes = [row("orderpay", summary, cpu), *await echo_rows(bench, plan)]
    case.rows = [ours, *echoes]
    case.ratio, case.ratio_of = ratio(ours.rate, echoes[0].rate), "orderpay / sync echo"
    cpu_ratio = cpu_vs(ours, echoes[0])
    case.notes.append(
        f"CPU per call {cpu_ratio} × the sync echo's, {cpu_vs(ours, echoes[1])} × the aio echo's"
    )
    case.figures = figures(ours, echoes[0], case.ratio, cpu_ratio)
    for label, variant in bench.beside:
        other = await beside_row(label, variant, plan, create_order_payload(bench.load_config(plan)))
        case.rows.append(other)
        case.figures[f"CPU ÷ baseline @ {label}"] = cpu_vs(other, echoes[0]) or 0.0
        case.figures[f"throughput ÷ baseline @ {label}"] = ratio(other.rate, echoes[0].rate) or 0.0
    clean = invariants_clean(
        case, summary, bench.database_url, Expected(config.user_prefix, orders=summary.ok)
    )
    case.passed = (
        clean
        and (case.ratio or 0) >= MIN_RATIO_B1
        and (cpu_ratio or 99) <= MAX_CPU_VS_ECHO_B1
        and summary.p99_ms <= MAX_P99_B1_MS
    )
    return case


async def duplicate_storm(
    name: str, targets: tuple[str, ...], config: LoadConfig, plan: Plan, duplicates: int
) -> tuple[Summary, int]:
    """`duplicates` concurrent CreateOrder copies per key; returns the summary and the split keys."""
    answers: dict[int, set[str]] = defaultdict(set)

    def on_answer(index: int, body: bytes) -> None:
        answers[index].add(order_service_pb2.CreateOrderResponse.FromString(body).order.order_id)

    run = drive_grpc_raw(
        name,
        targets,
        BFF_TOKEN,
        plan,
        method=CREATE_ORDER,
        payload=create_order_payload(config),
        on_answer=on_answer,
        burst=duplicates,
    )
    summary = await run
    return summary, sum(1 for ids in answers.values() if len(ids) > 1)


async def b2_duplicate_storm(bench: Bench) -> CaseResult:
    s = bench.sizes
    case = CaseResult(
        "B2",
        f"duplicate storm: {s.b2_keys:,} keys × {s.b2_duplicates} concurrent duplicates",
        f"exactly {s.b2_keys:,} orders; ≥ {MIN_RATIO_B2} × echo",
    )
    plan = Plan(s.b2_keys, max(1, s.concurrency // s.b2_duplicates))
    config = bench.load_config(plan)
    (summary, split), cpu = await metered(
        [bench.server], duplicate_storm("orderpay", (bench.target,), config, plan, s.b2_duplicates)
    )
    ours = row("orderpay", summary, cpu)
    echoes = await echo_rows(bench, plan, burst=s.b2_duplicates)
    case.rows = [ours, *echoes]
    case.ratio, case.ratio_of = ratio(ours.rate, echoes[0].rate), "orderpay / sync echo"
    case.notes.append(
        f"split keys (one key, two order ids): {split}; CPU/call {cpu_vs(ours, echoes[0])} × sync echo"
    )
    case.figures = figures(ours, echoes[0], case.ratio, cpu_vs(ours, echoes[0]))
    for label, variant in bench.beside:  # the same storm on each variant, side by side
        (other, other_split), other_cpu = await metered(
            [variant],
            duplicate_storm(
                f"orderpay {label}", (variant.endpoints["target"],), config, plan, s.b2_duplicates
            ),
        )
        case.rows.append(row(f"orderpay, {label}", other, other_cpu))
        case.notes.append(f"{label}: split keys {other_split}")
        case.figures[f"CPU ÷ baseline @ {label}"] = cpu_vs(case.rows[-1], echoes[0]) or 0.0
        case.figures[f"throughput ÷ baseline @ {label}"] = ratio(other.throughput, echoes[0].rate) or 0.0
        split += other_split
    expected = Expected(config.user_prefix, orders=s.b2_keys)
    clean = invariants_clean(case, summary, bench.database_url, expected) and not split
    case.passed = clean and (case.ratio or 0) >= MIN_RATIO_B2
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
    config = bench.load_config(plan)
    orders = await create_orders(bench.target, config, plan)  # setup, not measured
    signer = NotificationSigner.from_dir(bench.keys_dir)
    paid = [signer.transaction_success(out_trade_no, fee) for _, out_trade_no, fee in orders]
    delivery_plan = Plan(len(paid), max(1, s.concurrency // s.b3_copies))
    url = bench.server.endpoints["notify_url"]
    summary, cpu = await metered(
        [bench.server], drive_http_posts("orderpay", url, paid, delivery_plan, burst=s.b3_copies)
    )
    notes = [signer.transaction_success(f"BENCHECHO{i:08d}", 1800) for i in range(ECHO_NOTES)]
    echo, echo_cpu = await metered(
        [bench.echo_http],
        drive_http_posts("echo", bench.echo_http.endpoints["url"], notes, delivery_plan, burst=s.b3_copies),
    )
    case.rows = [row("orderpay sidecar", summary, cpu), row("aiohttp: verify + decrypt, 204", echo, echo_cpu)]
    case.ratio, case.ratio_of = ratio(summary.throughput, echo.throughput), "orderpay / verifying aiohttp"
    case.figures = figures(case.rows[0], case.rows[1], case.ratio, cpu_vs(case.rows[0], case.rows[1]))
    expected = Expected(config.user_prefix, orders=len(orders), paid=len(orders), fulfilled=len(orders))
    clean = (
        invariants_clean(case, summary, bench.database_url, expected) and len(orders) == s.b3_notifications
    )
    case.passed = clean and summary.throughput >= MIN_NOTIFY_RATE
    return case


async def create_orders(target: str, config: LoadConfig, plan: Plan) -> list[tuple[str, str, int]]:
    """One unpaid order per work item (order_id, out_trade_no, total_fee), through the raw client."""
    created: list[tuple[str, str, int]] = []

    def on_answer(_index: int, body: bytes) -> None:
        order = order_service_pb2.CreateOrderResponse.FromString(body).order
        created.append((order.order_id, order.out_trade_no, order.total_fee))

    payload = create_order_payload(config)
    await drive_grpc_raw(
        "setup", target, BFF_TOKEN, plan, method=CREATE_ORDER, payload=payload, on_answer=on_answer
    )
    return created


async def b4_full_flow(bench: Bench) -> CaseResult:
    s = bench.sizes
    case = CaseResult(
        "B4",
        f"full flow (create → prepay → sandbox pays → notify → fulfilled), {s.b4_orders:,} orders",
        f"0 lost; p99 pay→fulfilled ≤ {MAX_P99_B4_MS:.0f} ms",
    )
    if "notify_url" not in bench.server.endpoints:
        case.notes.append("skipped: the server's notify sidecar did not answer /healthz")
        return case
    plan = Plan(s.b4_orders, s.b4_concurrency)
    result, cpu = await metered(
        [bench.server], run_scenario("full-flow", bench.load_config(plan, fulfil_timeout_s=30.0))
    )
    flows = _items_rate(result.summary)
    # CPU per flow: three calls and one notification (and the prepay's wait) per item.
    case.rows = [
        row("orderpay, per flow (latency: pay→fulfilled)", result.summary, cpu, flows, result.summary.items)
    ]
    for echo in await echo_rows(bench, plan, sequential=3):
        echo.rate = _items_rate(echo.summary) if echo.summary else None
        echo.subject += " ×3 per flow"
        case.rows.append(echo)
    case.ratio, case.ratio_of = ratio(flows, case.rows[1].rate), "flows/s orderpay / sync echo"
    lost = int(result.summary.extra.get("lost", 0))
    case.notes.append(f"lost: {lost}; outcomes: {result.summary.extra.get('outcomes')}")
    clean = scenario_verdict(bench, result, case)
    case.passed = clean and lost == 0 and result.summary.p99_ms <= MAX_P99_B4_MS
    return case


def b6_memory(bench: Bench, after_b1_b4_mb: float) -> CaseResult:
    waiters = bench.sizes.b7_waiters
    case = CaseResult(
        "B6",
        f"memory: server RSS after B1–B4, and with {waiters:,} waiters parked (B7)",
        f"≤ {MAX_RSS_MB:.0f} MB",
    )
    parked_mb = bench.rss_parked_mb.get("server")
    case.rows = [
        Row("orderpay serve, after B1–B4", value=f"{after_b1_b4_mb:.1f} MB"),
        Row(f"orderpay serve, {waiters:,} waiters parked", value=f"{parked_mb:.1f} MB" if parked_mb else "-"),
        Row("gRPC echo, sync", value=f"{bench.echo_grpc.rss_mb():.1f} MB"),
        Row("gRPC echo, grpc.aio", value=f"{bench.echo_aio.rss_mb():.1f} MB"),
    ]
    case.ratio, case.ratio_of = ratio(after_b1_b4_mb, bench.echo_grpc.rss_mb()), "RSS orderpay / sync echo"
    case.passed = after_b1_b4_mb <= MAX_RSS_MB and (parked_mb or 0) <= MAX_RSS_MB and parked_mb is not None
    return case


def _items_rate(summary: Summary | None) -> float:
    return round(summary.items / summary.elapsed_s, 1) if summary and summary.elapsed_s else 0.0
