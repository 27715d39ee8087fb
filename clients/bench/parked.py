"""B7: 1,000 concurrent `GetOrder(wait_ms=20000)` parked on one server; meanwhile health, ListPlans
and CreateOrder probes, the server's CPU while parked, then each order's payment notification and
the time until its waiter returns. `park_and_wake` is reused across processes on PostgreSQL (B5's pair).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace

import aiohttp
import grpc
from grpc_health.v1 import health_pb2

from clients.bench.cases import Bench, create_orders
from clients.bench.drivers import CREATE_ORDER, create_order_payload, drive_grpc_raw, metered
from clients.bench.model import CaseResult, Row
from clients.bench.procs import BFF_TOKEN, Proc
from clients.calls import new_id, request_metadata
from clients.channel import make_aio_channel
from clients.loadtest.harness import Plan, Recorder, Summary, percentile
from clients.loadtest.notifications import NotificationSigner, SignedNotification
from clients.loadtest.scenarios import LoadConfig, post_notification
from orderpay.v1 import order_pb2, order_service_pb2, vip_service_pb2

GET_ORDER = "/orderpay.v1.OrderService/GetOrder"
LIST_PLANS = "/orderpay.v1.VipService/ListPlans"
HEALTH = "/grpc.health.v1.Health/Check"
WAITERS_PER_CHANNEL = 100  # HTTP/2 streams per connection stay well under any server limit
PROBES = 300
PROBE_CONCURRENCY = 8
WAKE_CONCURRENCY = 16
PAY_RATE = 100.0  # notifications/s: well under capacity, so the wake is measured, not a saturated queue
PARK_TIMEOUT_S = 60.0


@dataclass
class ParkResult:
    waiters: int
    parked_cpu_pct: float  # of one core, while nothing but the parked waiters was going on
    rss_mb: float
    probes: dict[str, Summary]
    wake_after_ack_ms: list[float] = field(default_factory=list)  # waiter returned − notification acked
    wake_after_send_ms: list[float] = field(default_factory=list)  # waiter returned − notification sent
    ack_ms: list[float] = field(default_factory=list)  # notification sent → acknowledged
    not_succeeded: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def p99(self, values: list[float]) -> float:
        return round(percentile(sorted(values), 0.99), 1)

    def rows(self, label: str) -> list[Row]:
        rows = [
            Row(f"{label}: {name} while parked", summary, summary.throughput)
            for name, summary in self.probes.items()
        ]
        rows.append(
            Row(
                f"{label}: wake p99 after commit (ack … send)",
                value=f"{self.p99(self.wake_after_ack_ms)} … {self.p99(self.wake_after_send_ms)} ms",
            )
        )
        rows.append(
            Row(
                f"{label}: server CPU while {self.waiters:,} parked",
                value=f"{self.parked_cpu_pct:.2f} % of a core",
            )
        )
        return rows


async def park_and_wake(
    *,
    waiter: Proc,
    waiter_metrics_url: str,
    notifier_notify_url: str,
    config: LoadConfig,
    count: int,
    wait_ms: int,
    window_s: float,
) -> ParkResult:
    """Park `count` waiters on `waiter`, measure, then pay every order through `notifier_notify_url`
    (the same process, or another one sharing the database)."""
    target = waiter.endpoints["target"]
    orders = await create_orders(target, config, Plan(count, 32))
    returned: dict[str, float] = {}
    outcomes: dict[str, int] = {}
    channels = [make_aio_channel(target) for _ in range(max(1, count // WAITERS_PER_CHANNEL))]
    try:
        waits = [
            asyncio.create_task(_wait(channels[i % len(channels)], order_id, wait_ms, returned, outcomes))
            for i, (order_id, _, _) in enumerate(orders)
        ]
        await _until_parked(waiter_metrics_url, count)
        _, cpu = await metered([waiter], asyncio.sleep(window_s))
        parked_pct = round(cpu.seconds / window_s * 100, 2)
        rss = waiter.rss_mb()
        probes = await _probes(target, config)
        acked, sent, pay_errors = await _pay(config, notifier_notify_url, orders)
        await asyncio.gather(*waits)
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))
    errors = {k: v for k, v in outcomes.items() if k != "SUCCEEDED"} | pay_errors
    result = ParkResult(count, parked_pct, rss, probes, errors=errors)
    for order_id, _, _ in orders:
        if order_id in returned and order_id in acked:
            result.wake_after_ack_ms.append(max(0.0, (returned[order_id] - acked[order_id]) * 1000))
            result.wake_after_send_ms.append((returned[order_id] - sent[order_id]) * 1000)
            result.ack_ms.append((acked[order_id] - sent[order_id]) * 1000)
    result.not_succeeded = count - outcomes.get("SUCCEEDED", 0)
    return result


async def _wait(
    channel: grpc.aio.Channel,
    order_id: str,
    wait_ms: int,
    returned: dict[str, float],
    outcomes: dict[str, int],
) -> None:
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(GET_ORDER)
    request = order_service_pb2.GetOrderRequest(order_id=order_id, wait_ms=wait_ms).SerializeToString()
    try:
        body = await call(
            request, timeout=wait_ms / 1000 + 10, metadata=request_metadata(BFF_TOKEN, new_id())
        )
    except grpc.aio.AioRpcError as exc:
        outcomes[exc.code().name] = outcomes.get(exc.code().name, 0) + 1
        return
    returned[order_id] = time.perf_counter()
    fulfilment = order_pb2.Fulfilment.Name(
        order_service_pb2.GetOrderResponse.FromString(body).order.fulfilment
    )
    key = fulfilment.removeprefix("FULFILMENT_")
    outcomes[key] = outcomes.get(key, 0) + 1


async def _until_parked(metrics_url: str, count: int) -> None:
    deadline = time.monotonic() + PARK_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(metrics_url) as response:
                text = await response.text()
            parked = next(
                (
                    float(line.split()[1])
                    for line in text.splitlines()
                    if line.startswith("orderpay_waiters_parked ")
                ),
                0.0,
            )
            if parked >= count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {parked:.0f} of {count} waiters parked within {PARK_TIMEOUT_S:g} s")
            await asyncio.sleep(0.05)  # polling a remote gauge, not synchronising work


async def _probes(target: str, config: LoadConfig) -> dict[str, Summary]:
    plan = Plan(PROBES, PROBE_CONCURRENCY)
    health = health_pb2.HealthCheckRequest().SerializeToString()
    plans = vip_service_pb2.ListPlansRequest().SerializeToString()
    probe_config = replace(config, run_id=config.run_id + "p")
    return {
        "health": await drive_grpc_raw(
            "health", target, BFF_TOKEN, plan, method=HEALTH, payload=lambda _i: health
        ),
        "ListPlans": await drive_grpc_raw(
            "ListPlans", target, BFF_TOKEN, plan, method=LIST_PLANS, payload=lambda _i: plans
        ),
        "CreateOrder": await drive_grpc_raw(
            "CreateOrder",
            target,
            BFF_TOKEN,
            plan,
            method=CREATE_ORDER,
            payload=create_order_payload(probe_config),
        ),
    }


async def _pay(
    config: LoadConfig, notify_url: str, orders: list[tuple[str, str, int]]
) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    signer = NotificationSigner.from_dir(config.credentials_dir)
    notes = [
        (order_id, signer.transaction_success(out_trade_no, fee)) for order_id, out_trade_no, fee in orders
    ]
    acked: dict[str, float] = {}
    sent: dict[str, float] = {}
    recorder = Recorder()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=WAKE_CONCURRENCY)) as session:

        async def one(order_id: str, note: SignedNotification) -> None:
            sent[order_id] = time.perf_counter()
            if await recorder.timed(post_notification(session, notify_url, note)) is not None:
                acked[order_id] = time.perf_counter()

        started, posts = time.perf_counter(), []
        for number, (order_id, note) in enumerate(notes):
            await asyncio.sleep(max(0.0, started + number / PAY_RATE - time.perf_counter()))  # pacing
            posts.append(asyncio.create_task(one(order_id, note)))
        await asyncio.gather(*posts)
    errors = {f"notify {reason}": n for reason, n in recorder.errors.items()}
    return acked, sent, errors


MAX_PROBE_P99_MS = 50.0
MAX_PARKED_CPU_PCT = 5.0
MAX_WAKE_MS = 50.0


def metrics_url(server: Proc) -> str:
    return server.endpoints["metrics_url"]


def verdict(result: ParkResult, notes: list[str], label: str) -> bool:
    """The wake bar is judged on `wake_after_ack_ms`: the commit precedes the acknowledgement by one
    response write; the figure after sending includes the notification's own processing."""
    if result.errors or result.not_succeeded:
        notes.append(f"{label}: {result.not_succeeded} waiters did not end SUCCEEDED; {result.errors}")
    probes_ok = all(s.p99_ms <= MAX_PROBE_P99_MS and not s.errors for s in result.probes.values())
    wake = result.p99(result.wake_after_ack_ms)
    notes.append(
        f"{label}: wake p99 {wake} ms after the notification was acked (commit ≤ ack), "
        f"{result.p99(result.wake_after_send_ms)} ms after it was sent (send ≤ commit); "
        f"notifications answered in p50 {round(percentile(sorted(result.ack_ms), 0.5), 1)} / "
        f"p99 {result.p99(result.ack_ms)} ms at {PAY_RATE:.0f}/s"
    )
    return (
        probes_ok
        and not result.errors
        and not result.not_succeeded
        and result.parked_cpu_pct < MAX_PARKED_CPU_PCT
        and wake <= MAX_WAKE_MS
    )


async def b7_parked(bench: Bench) -> CaseResult:
    s = bench.sizes
    case = CaseResult(
        "B7",
        f"{s.b7_waiters:,} concurrent GetOrder(wait_ms={s.b7_wait_ms:,})",
        f"probes p99 ≤ {MAX_PROBE_P99_MS:.0f} ms; < {MAX_PARKED_CPU_PCT:.0f} % of a core parked; "
        f"wake ≤ {MAX_WAKE_MS:.0f} ms after commit (also across processes, PostgreSQL)",
    )
    if "notify_url" not in bench.server.endpoints:
        case.notes.append("skipped: the server's notify sidecar did not answer /healthz")
        return case
    result = await park_and_wake(
        waiter=bench.server,
        waiter_metrics_url=metrics_url(bench.server),
        notifier_notify_url=bench.server.endpoints["notify_url"],
        config=bench.load_config(Plan(s.b7_waiters, 32)),
        count=s.b7_waiters,
        wait_ms=s.b7_wait_ms,
        window_s=s.b7_park_window_s,
    )
    bench.rss_parked_mb["server"] = result.rss_mb
    case.rows = result.rows("SQLite, 1 process")
    case.figures["wake p99 ms after ack"] = result.p99(result.wake_after_ack_ms)
    case.figures["notification ack p99 ms"] = result.p99(result.ack_ms)
    case.passed = verdict(result, case.notes, "SQLite, 1 process")
    bench.b7_case = case  # B5 adds the cross-process half on PostgreSQL
    return case
