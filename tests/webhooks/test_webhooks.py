"""Signed webhooks (issue 19 item 4) on SQLite and PostgreSQL, through the real sender job and a real
aiohttp receiver on 127.0.0.1:0: order, signatures, retries with back-off, rotation, disablement after
the configured days (the injected clock moves; nothing sleeps), re-enabling, two subscribers at once.
Fixtures: tests/webhooks/conftest.py."""

from __future__ import annotations

import secrets
from datetime import timedelta

from clients.webhook_receiver import verify
from server.app import App
from server.domain.webhooks import WebhookState
from server.jobs.webhooks import WebhookTask
from server.service.context import Caller
from tests.jobs.helpers import MovableClock
from tests.support.webhook_receiver import RecordingReceiver, drain, some_events


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
