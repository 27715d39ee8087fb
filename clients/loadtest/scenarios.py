"""The four load scenarios. Each drives the stack with the shared harness and says what the database
should hold afterwards (`Expected`), scoped to this run's users so other data never interferes.

- `create-unique`: every call a new user and key; measures CreateOrder.
- `duplicate-storm`: each key sent `duplicates` times at once; all must get the same order.
- `notify-storm`: orders are created over gRPC (setup), then one signed TRANSACTION.SUCCESS per order
  is POSTed `duplicates` times at once straight to the sidecar (signed here, before the clock starts;
  see `notifications`). Every order must end up paid with one fulfilment row.
- `notify-fuzz`: the hostile-notification drill: mutated, forged, probed, garbage and stale replays of
  notifications for real unpaid orders; every answer must be 4xx and no order may be paid.
- `full-flow`: create → CreatePayment NATIVE → the sandbox auto-pays → notification → GetOrder(wait_ms)
  until fulfilment SUCCEEDED; the latency recorded is pay → fulfilled.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from clients.aio_client import AsyncOrderPayClient
from clients.loadtest.fuzz import hostile_variants
from clients.loadtest.harness import Plan, ProgressHook, Recorder, Summary, drive, reason_of
from clients.loadtest.invariants import Expected
from clients.loadtest.notifications import NotificationSigner, SignedNotification
from orderpay.v1 import order_pb2

SCENARIOS = ("create-unique", "duplicate-storm", "notify-storm", "notify-fuzz", "full-flow")
FUZZ_ORDERS = 50
ACCEPTED_NOTIFY_STATUSES = frozenset({200, 204})
LONG_POLL_MS = 2_000
CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LoadConfig:
    targets: tuple[str, ...]  # gRPC host:port; several = round-robin (one process each, e.g. B5)
    token: str
    plan: Plan
    product_id: str = "vip-month"
    duplicates: int = 1
    sandbox_url: str = ""
    notify_url: str = ""
    credentials_dir: Path = Path(".orderpay/keys")
    auto_pay_delay_s: float = 0.05
    fulfil_timeout_s: float = 30.0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def user_prefix(self) -> str:
        return f"lt-{self.run_id}-"

    def user(self, index: int) -> str:
        return f"{self.user_prefix}{index}"

    def key(self, index: int) -> str:
        return f"k-{self.run_id}-{index}"


@dataclass(frozen=True)
class ScenarioResult:
    summary: Summary
    expected: Expected
    problems: list[str] = field(default_factory=list)  # what the client saw go wrong (split keys, lost)


class Clients:
    """One async client per target; work item `i` goes to target `i mod n`."""

    def __init__(self, config: LoadConfig) -> None:
        self._clients = [
            AsyncOrderPayClient(target, config.token, default_timeout=CALL_TIMEOUT_S)
            for target in config.targets
        ]

    def __call__(self, index: int) -> AsyncOrderPayClient:
        return self._clients[index % len(self._clients)]

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self._clients))


async def run_scenario(name: str, config: LoadConfig, progress: ProgressHook | None = None) -> ScenarioResult:
    runner = RUNNERS.get(name)
    if runner is None:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    clients = Clients(config)
    try:
        return await runner(config, clients, progress)
    finally:
        await clients.close()


async def create_unique(
    config: LoadConfig, clients: Clients, progress: ProgressHook | None
) -> ScenarioResult:
    async def work(index: int, recorder: Recorder) -> None:
        call = clients(index).create_order(
            config.user(index), config.product_id, request_id=config.key(index)
        )
        await recorder.timed(call)

    summary = await drive("create-unique", work, config.plan, progress=progress)
    orders = summary.items if not summary.errors else None  # a failed call may or may not have created one
    return ScenarioResult(summary, Expected(config.user_prefix, orders=orders))


async def duplicate_storm(
    config: LoadConfig, clients: Clients, progress: ProgressHook | None
) -> ScenarioResult:
    recorder = Recorder()
    split_keys = 0
    replayed: Counter[bool] = Counter()

    async def work(index: int, recorder: Recorder) -> None:
        nonlocal split_keys
        client, user, key = clients(index), config.user(index), config.key(index)
        calls = [
            client.create_order(user, config.product_id, request_id=key) for _ in range(config.duplicates)
        ]
        results = await asyncio.gather(*(recorder.timed(call) for call in calls))
        answered = [result for result in results if result is not None]
        replayed.update(result.replayed for result in answered)
        split_keys += len({result.order.order_id for result in answered}) > 1

    # `--concurrency` counts calls in flight; each key puts `duplicates` of them in flight at once.
    plan = Plan(
        config.plan.count, max(1, config.plan.concurrency // config.duplicates), config.plan.duration_s
    )
    recorder.extra["duplicates_per_key"] = config.duplicates
    summary = await drive("duplicate-storm", work, plan, progress=progress, recorder=recorder)
    summary.extra.update(
        first_answers=replayed[False], replayed_answers=replayed[True], split_keys=split_keys
    )
    # Every key had at least one answer unless all its calls failed; split keys are a client-side failure.
    orders = summary.items if not summary.errors else None
    problems = [f"{split_keys} keys got more than one order_id"] if split_keys else []
    return ScenarioResult(summary, Expected(config.user_prefix, orders=orders), problems)


async def notify_storm(config: LoadConfig, clients: Clients, progress: ProgressHook | None) -> ScenarioResult:
    orders = await _create_orders(config, clients)
    signer = NotificationSigner.from_dir(config.credentials_dir)
    notes = [signer.transaction_success(order.out_trade_no, order.total_fee) for order in orders]
    connector = aiohttp.TCPConnector(limit=config.plan.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def work(index: int, recorder: Recorder) -> None:
            note = notes[index]
            await asyncio.gather(
                *(
                    recorder.timed(post_notification(session, config.notify_url, note))
                    for _ in range(config.duplicates)
                )
            )

        plan = Plan(len(notes), max(1, config.plan.concurrency // config.duplicates), config.plan.duration_s)
        summary = await drive("notify-storm", work, plan, progress=progress)
    summary.extra.update(orders_created=len(orders), copies_per_notification=config.duplicates)
    paid = summary.items if not summary.errors else None
    return ScenarioResult(summary, Expected(config.user_prefix, orders=len(orders), paid=paid))


async def notify_fuzz(config: LoadConfig, clients: Clients, progress: ProgressHook | None) -> ScenarioResult:
    """The notify-fuzz drill: hostile notifications for real unpaid orders; none may be accepted."""
    orders = await _create_orders(replace(config, plan=Plan(FUZZ_ORDERS, config.plan.concurrency)), clients)
    signer = NotificationSigner.from_dir(config.credentials_dir)
    variants = hostile_variants(signer, [(o.out_trade_no, o.total_fee) for o in orders], config.plan.count)
    answers: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=config.plan.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def work(index: int, recorder: Recorder) -> None:
            variant = variants[index]
            status = await recorder.timed(post_raw(session, config.notify_url, variant.body, variant.headers))
            answers[f"{variant.kind.split(':')[0]}:{status}"] += 1
            if status is not None and not 400 <= status < 500:
                recorder.fail(f"{variant.kind}:HTTP_{status}")  # accepted, or crashed: both are failures

        summary = await drive(
            "notify-fuzz", work, Plan(len(variants), config.plan.concurrency), progress=progress
        )
    summary.extra.update(answers=dict(sorted(answers.items())), orders=len(orders))
    return ScenarioResult(summary, Expected(config.user_prefix, orders=len(orders), paid=0))


async def post_raw(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> int:
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        return response.status


async def post_notification(session: aiohttp.ClientSession, url: str, note: SignedNotification) -> int:
    """POST one notification; anything but 200/204 is a failure named by its status."""
    async with session.post(url, data=note.body, headers=note.headers) as response:
        await response.read()
        if response.status not in ACCEPTED_NOTIFY_STATUSES:
            raise NotifyRejectedError(response.status)
        return response.status


class NotifyRejectedError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"sidecar answered {status}")
        self.reason = f"HTTP_{status}"


async def _create_orders(config: LoadConfig, clients: Clients) -> list[order_pb2.Order]:
    """Setup for the notify storm (not measured): one unpaid order per notification."""
    created: list[order_pb2.Order] = []

    async def work(index: int, recorder: Recorder) -> None:
        call = clients(index).create_order(
            config.user(index), config.product_id, request_id=config.key(index)
        )
        result = await recorder.timed(call)
        if result is not None:
            created.append(result.order)

    setup = await drive("setup", work, Plan(config.plan.count, config.plan.concurrency))
    if setup.errors:
        raise SetupError(f"creating orders for the storm failed: {setup.errors}")
    return created


class SetupError(RuntimeError):
    """The scenario could not prepare its data; nothing was measured."""


async def full_flow(config: LoadConfig, clients: Clients, progress: ProgressHook | None) -> ScenarioResult:
    # The sandbox is shared with whoever else uses the stack (`demo --manual` expects nobody to pay):
    # auto-pay is on for this run only, and back as it was when the run ends, however it ends.
    async with sandbox_changed(config.sandbox_url, {"auto_pay_delay_s": config.auto_pay_delay_s}):
        return await _full_flow(config, clients, progress)


async def _full_flow(config: LoadConfig, clients: Clients, progress: ProgressHook | None) -> ScenarioResult:
    outcomes: Counter[str] = Counter()

    async def work(index: int, recorder: Recorder) -> None:
        try:
            outcome = await _one_flow(config, clients(index), index, recorder)
        except Exception as exc:  # noqa: BLE001 - counted by reason, the run goes on
            outcome = reason_of(exc)
        outcomes[outcome] += 1
        if outcome != "SUCCEEDED":
            recorder.fail(outcome)

    summary = await drive("full-flow", work, config.plan, progress=progress)
    summary.extra.update(outcomes=dict(outcomes), lost=summary.items - outcomes["SUCCEEDED"])
    done = summary.items if not summary.errors else None
    lost = summary.extra["lost"]
    problems = [f"{lost} of {summary.items} orders did not reach fulfilment SUCCEEDED"] if lost else []
    return ScenarioResult(
        summary, Expected(config.user_prefix, orders=done, paid=done, fulfilled=done), problems
    )


async def _one_flow(config: LoadConfig, client: AsyncOrderPayClient, index: int, recorder: Recorder) -> str:
    created = await client.create_order(config.user(index), config.product_id, request_id=config.key(index))
    order_id = created.order.order_id
    # The sandbox's auto-pay timer starts inside CreatePayment, so "sent + delay" is no later than the
    # real payment: the pay → fulfilled figure can only err on the slow side.
    paid_at = time.perf_counter() + config.auto_pay_delay_s
    await client.create_payment(order_id, "NATIVE")
    give_up = time.perf_counter() + config.fulfil_timeout_s
    while (left_ms := int((give_up - time.perf_counter()) * 1000)) > 0:
        order = await client.get_order(order_id, wait_ms=min(LONG_POLL_MS, left_ms))
        if order.fulfilment != order_pb2.FULFILMENT_PENDING:
            if order.fulfilment == order_pb2.FULFILMENT_SUCCEEDED:
                recorder.observe(time.perf_counter() - paid_at)
            return order_pb2.Fulfilment.Name(order.fulfilment).removeprefix("FULFILMENT_")
    return "LOST"


@asynccontextmanager
async def sandbox_changed(sandbox_url: str, changes: dict[str, object]) -> AsyncIterator[None]:
    """The sandbox's config with `changes` inside the block, and as it was before once it ends (an
    error or Ctrl-C included)."""
    if not sandbox_url:
        raise SetupError("full-flow needs --sandbox-url (the sandbox's control API pays the orders)")
    url = f"{sandbox_url.rstrip('/')}/sandbox/v1/config"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            if response.status != 200:
                raise SetupError(f"sandbox config answered {response.status}: {await response.text()}")
            before = await response.json()
        await _put_config(session, url, changes)
        try:
            yield
        finally:
            await asyncio.shield(_put_config(session, url, {key: before[key] for key in changes}))


async def _put_config(session: aiohttp.ClientSession, url: str, changes: dict[str, object]) -> None:
    async with session.put(url, json=changes) as response:
        if response.status != 200:
            raise SetupError(f"sandbox config answered {response.status}: {await response.text()}")


Runner = Callable[[LoadConfig, Clients, ProgressHook | None], Awaitable[ScenarioResult]]
RUNNERS: dict[str, Runner] = {
    "create-unique": create_unique,
    "duplicate-storm": duplicate_storm,
    "notify-storm": notify_storm,
    "notify-fuzz": notify_fuzz,
    "full-flow": full_flow,
}
