"""Signed webhooks (issue 19 item 4) on SQLite and PostgreSQL, through the real sender job and a real
aiohttp receiver on 127.0.0.1:0: order, signatures, retries with back-off, rotation, disablement after
the configured days (the injected clock moves; nothing sleeps), and re-enabling."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest

from clients.webhook_receiver import verify
from server.adapters.webhook_http import HttpxWebhookSender, webhook_body
from server.app import App
from server.bootstrap import build_app
from server.domain.catalogue import ProductKind
from server.domain.webhooks import WebhookState
from server.jobs.webhooks import WebhookTask
from server.service.context import Caller
from server.service.shapes import JobResult
from server.service.webhook_delivery import WebhookDelivery
from server.service.webhook_ports import SendOutcome, WebhookSender
from server.service.webhooks import WebhookConfig
from server.webhook_wiring import delivery
from tests.jobs.helpers import MovableClock, add_product, unpaid_order
from tests.support.settings import settings_for
from tests.support.webhook_receiver import RecordingReceiver


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(scope="module")
def hooks_app(database_url: str, clock: MovableClock) -> Iterator[App]:
    settings = settings_for(
        database_url,
        webhook_backoff_base_s=1.0,
        webhook_backoff_max_s=2.0,
        webhook_disable_after_days=2.0,
        webhook_timeout_s=5.0,
    )
    application = build_app(settings, clock=clock, payments_required=False)
    add_product(application, "hook-thing", ProductKind.ARTICLE)
    yield application
    application.close()


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    got = RecordingReceiver()
    yield got
    got.stop()


@pytest.fixture
def task(hooks_app: App) -> Iterator[WebhookTask]:
    job = WebhookTask(delivery(hooks_app), concurrency=2)
    yield job
    job.close()  # its kept-alive connections


@pytest.fixture
def make_delivery(hooks_app: App) -> Iterator[Callable[..., WebhookDelivery]]:
    """Senders as separate processes would have them, each closed (its connections) afterwards."""
    made: list[WebhookDelivery] = []

    def make(config: WebhookConfig | None = None, sender: WebhookSender | None = None) -> WebhookDelivery:
        config = config or hooks_app.webhooks.config
        sender = sender or HttpxWebhookSender(config.timeout_s, 2)
        made.append(
            WebhookDelivery(hooks_app.uow, hooks_app.read, hooks_app.clock, config, sender, webhook_body)
        )
        return made[-1]

    yield make
    for sender in made:
        sender.close()


@pytest.fixture
def name(hooks_app: App) -> Iterator[str]:
    """A subscriber of this test's own, starting at the head; its webhook is removed afterwards so the
    next test's runs never meet this test's receiver."""
    chosen = f"hook-{secrets.token_hex(4)}"
    hooks_app.feed.register(chosen)
    hooks_app.feed.ack(chosen, hooks_app.feed.head())
    yield chosen
    hooks_app.webhooks.register(chosen, "")


def some_events(app: App, count: int) -> list[int]:
    """`count` new orders: one ORDER_CREATED each; their positions."""
    before = app.feed.head()
    for _ in range(count):
        unpaid_order(app, f"u-{secrets.token_hex(4)}", "hook-thing")
    return list(range(before + 1, app.feed.head() + 1))


def drain(task: WebhookTask, rounds: int = 20) -> list[JobResult]:
    """Run the sender until a run has nothing more to send right now (bounded: never hangs)."""
    results = []
    for _ in range(rounds):
        result = task.run_once()
        results.append(result)
        if not result.more:
            return results
    raise AssertionError(f"the sender never finished: {results}")


def test_events_arrive_in_feed_order_signed_and_acknowledge_the_subscriber(
    hooks_app: App, task: WebhookTask, receiver: RecordingReceiver, name: str, clock: MovableClock
) -> None:
    secret = hooks_app.webhooks.register(name, receiver.url).secret
    assert secret.startswith("whsec_")
    positions = some_events(hooks_app, 5)
    drain(task)
    assert [r.position for r in receiver.received] == positions
    for got in receiver.received:
        assert verify(secret, got.timestamp, got.signature, got.body, now=clock().timestamp())
        assert got.event["type"] == "EVENT_TYPE_ORDER_CREATED"
        assert got.event["orderId"]
    view = {v.subscriber.name: v for v in hooks_app.webhooks.subscribers()}[name]
    assert view.subscriber.acked_position == positions[-1]
    assert view.webhook is not None
    assert view.webhook.last_success_at is not None
    assert view.webhook.consecutive_failures == 0
    drain(task)  # nothing new: nothing sent again
    assert len(receiver.received) == len(positions)


def test_a_receiver_failing_n_times_gets_everything_once_after_dedup_in_order(
    hooks_app: App, task: WebhookTask, receiver: RecordingReceiver, name: str, clock: MovableClock
) -> None:
    hooks_app.webhooks.register(name, receiver.url)
    positions = some_events(hooks_app, 4)
    receiver.fail_next = 3
    for attempt in range(1, 4):
        result = task.run_once()
        assert result.errors == 1
        webhook = hooks_app.webhooks.webhook_of(name)
        assert webhook is not None
        assert webhook.consecutive_failures == attempt
        assert webhook.last_error == "HTTP 500"
        assert task.run_once().items == 0  # backing off: not yet due
        assert webhook.next_attempt_at is not None
        clock.move_to(webhook.next_attempt_at)
    drain(task)
    sent = [r.position for r in receiver.received]
    assert sent == sorted(sent), "a retry never comes after a later event"
    assert sent[:3] == [positions[0]] * 3  # the same event, retried
    assert receiver.acknowledged_positions() == positions
    webhook = hooks_app.webhooks.webhook_of(name)
    assert webhook is not None
    assert webhook.consecutive_failures == 0
    assert webhook.failing_since is None


def test_a_signature_checked_with_another_secret_fails(
    hooks_app: App, task: WebhookTask, receiver: RecordingReceiver, name: str, clock: MovableClock
) -> None:
    secret = hooks_app.webhooks.register(name, receiver.url).secret
    some_events(hooks_app, 1)
    drain(task)
    (got,) = receiver.received
    now = clock().timestamp()
    assert verify(secret, got.timestamp, got.signature, got.body, now=now)
    assert not verify("whsec_" + secrets.token_urlsafe(32), got.timestamp, got.signature, got.body, now=now)
    assert not verify(secret, got.timestamp, got.signature, got.body.replace(b"ORDER", b"ORDEr"), now=now)
    assert not verify(secret, str(int(got.timestamp) + 1), got.signature, got.body, now=now)
    assert not verify(secret, got.timestamp, got.signature, got.body, now=now + 3600)  # a late replay


def test_the_example_receiver_refuses_a_wrong_secret_and_nothing_is_acknowledged(
    hooks_app: App, task: WebhookTask, name: str
) -> None:
    from clients.webhook_receiver import receiver as example
    from server.serving.http import AppThread

    served = AppThread("example", [(lambda: example("whsec_not-the-one"), "127.0.0.1", 0, None)], grace_s=1.0)
    (port,) = served.start()
    try:
        hooks_app.webhooks.register(name, f"http://127.0.0.1:{port}/orderpay")
        before = hooks_app.feed.head()
        some_events(hooks_app, 1)
        assert task.run_once().errors == 1
    finally:
        served.stop(2.0)
    webhook = hooks_app.webhooks.webhook_of(name)
    assert webhook is not None
    assert webhook.last_error == "HTTP 400"
    view = {v.subscriber.name: v for v in hooks_app.webhooks.subscribers()}[name]
    assert view.subscriber.acked_position == before


def test_rotation_signs_with_both_secrets_until_the_overlap_ends(
    hooks_app: App, task: WebhookTask, receiver: RecordingReceiver, name: str, clock: MovableClock
) -> None:
    old = hooks_app.webhooks.register(name, receiver.url).secret
    new = hooks_app.webhooks.rotate(name).secret
    assert new != old
    some_events(hooks_app, 1)
    drain(task)
    got = receiver.received[-1]
    assert got.signature.count("v1=") == 2
    for secret in (old, new):
        assert verify(secret, got.timestamp, got.signature, got.body, now=clock().timestamp())
    clock.advance(timedelta(hours=25))  # ORDERPAY_WEBHOOK_SECRET_OVERLAP_H (24) is over
    some_events(hooks_app, 1)
    drain(task)
    late = receiver.received[-1]
    assert late.signature.count("v1=") == 1
    assert verify(new, late.timestamp, late.signature, late.body, now=clock().timestamp())
    assert not verify(old, late.timestamp, late.signature, late.body, now=clock().timestamp())


def test_disabled_after_the_configured_days_of_failure_then_re_enabled_from_the_ack(
    hooks_app: App, task: WebhookTask, receiver: RecordingReceiver, name: str, clock: MovableClock
) -> None:
    hooks_app.webhooks.register(name, receiver.url)
    positions = some_events(hooks_app, 2)
    receiver.fail_always, receiver.fail_status = True, 503
    assert task.run_once().errors == 1
    clock.advance(timedelta(days=1))
    assert task.run_once().errors == 1
    webhook = hooks_app.webhooks.webhook_of(name)
    assert webhook is not None
    assert webhook.state is WebhookState.ACTIVE  # failing one day of the two
    clock.advance(timedelta(days=1, seconds=1))
    assert task.run_once().errors == 1
    webhook = hooks_app.webhooks.webhook_of(name)
    assert webhook is not None
    assert webhook.state is WebhookState.DISABLED
    assert webhook.consecutive_failures == 3
    clock.advance(timedelta(days=1))
    asked = len(receiver.received)
    assert task.run_once().items == 0
    assert len(receiver.received) == asked, "a disabled webhook is not called"
    receiver.fail_always = False
    view = hooks_app.webhooks.set_enabled(name, True, Caller("admin", "test"))
    assert view.webhook is not None
    assert view.webhook.state is WebhookState.ACTIVE
    assert view.webhook.consecutive_failures == 0
    drain(task)
    assert receiver.acknowledged_positions() == positions


def test_a_leased_webhook_is_not_claimed_twice_and_a_lapsed_lease_hands_over(
    hooks_app: App,
    receiver: RecordingReceiver,
    name: str,
    clock: MovableClock,
    make_delivery: Callable[..., WebhookDelivery],
) -> None:
    """Two senders (processes) never deliver one subscriber together; one whose lease ran out (stuck,
    or crashed) records nothing more, and the next goes on from the acknowledged position."""
    hooks_app.webhooks.register(name, receiver.url)
    positions = some_events(hooks_app, 3)
    senders = make_delivery()
    (stale,) = senders.claim(10)
    assert senders.claim(10) == []  # leased: the other sender moves on
    clock.advance(senders.config.lease + timedelta(seconds=1))
    (fresh,) = senders.claim(10)
    assert fresh.owner != stale.owner
    lapsed = senders.deliver(stale)
    assert lapsed.delivered == 0  # its POST went out, but the lease was no longer its own
    assert senders.deliver(fresh).positions == positions
    assert receiver.acknowledged_positions() == positions


def test_two_subscribers_are_delivered_side_by_side_each_in_order(
    hooks_app: App, task: WebhookTask, receiver: RecordingReceiver, name: str
) -> None:
    other_receiver, other = RecordingReceiver(), f"hook-{secrets.token_hex(4)}"
    try:
        hooks_app.feed.register(other)
        hooks_app.feed.ack(other, hooks_app.feed.head())
        hooks_app.webhooks.register(name, receiver.url)
        hooks_app.webhooks.register(other, other_receiver.url)
        positions = some_events(hooks_app, 4)
        assert task.run_once().items == 2 * len(positions)  # one run: both, each on its own thread
        assert [r.position for r in receiver.received] == positions
        assert [r.position for r in other_receiver.received] == positions
    finally:
        hooks_app.webhooks.register(other, "")
        other_receiver.stop()


def test_senders_claiming_at_once_lease_a_webhook_to_exactly_one(
    hooks_app: App, receiver: RecordingReceiver, name: str, make_delivery: Callable[..., WebhookDelivery]
) -> None:
    """As several server processes' jobs would: the lease is a conditional UPDATE the database
    re-checks under the row lock, so one claim wins and the rest get nothing."""
    hooks_app.webhooks.register(name, receiver.url)
    some_events(hooks_app, 1)
    senders = [make_delivery() for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        claims = list(pool.map(lambda sender: sender.claim(10), senders))
    winners = [c for got in claims for c in got]
    assert [c.webhook.subscriber for c in winners] == [name]
    assert senders[0].deliver(winners[0]).delivered == 1  # the lease is released after its run


class _TransactionProbe:
    """A sender that records whether a database transaction was open on its thread during the POST."""

    def __init__(self, app: App) -> None:
        self._app = app
        self.open_during_post: list[bool] = []

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendOutcome:
        self.open_during_post.append(bool(self._app.db.in_transaction()))
        return SendOutcome(204)

    def close(self) -> None:
        pass


def test_no_transaction_is_open_across_the_http_call(
    hooks_app: App, name: str, make_delivery: Callable[..., WebhookDelivery]
) -> None:
    hooks_app.webhooks.register(name, "http://127.0.0.1:9/never-called")
    positions = some_events(hooks_app, 2)
    probe = _TransactionProbe(hooks_app)
    sender = make_delivery(sender=probe)
    (claim,) = sender.claim(10)
    assert sender.deliver(claim).positions == positions
    assert probe.open_during_post == [False, False]


def test_a_receiver_that_never_answers_times_out_and_is_retried_later(
    hooks_app: App, receiver: RecordingReceiver, name: str, make_delivery: Callable[..., WebhookDelivery]
) -> None:
    hooks_app.webhooks.register(name, receiver.url)
    some_events(hooks_app, 1)
    receiver.hang = True
    config = replace(hooks_app.webhooks.config, timeout_s=0.3)
    sender = make_delivery(config)
    (claim,) = sender.claim(10)
    report = sender.deliver(claim)
    assert (report.delivered, report.failed) == (0, True)
    webhook = hooks_app.webhooks.webhook_of(name)
    assert webhook is not None
    assert webhook.last_error == "timed out"
    assert webhook.next_attempt_at is not None
