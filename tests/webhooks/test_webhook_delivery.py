"""How webhooks are sent (issue 19 item 4), on SQLite and PostgreSQL: leases between senders (as
several server processes have them), no transaction open across the HTTP call, the sender's timeout.
Fixtures: tests/webhooks/conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

from server.app import App
from server.service.webhook_delivery import WebhookDelivery
from server.service.webhook_ports import SendOutcome
from tests.jobs.helpers import MovableClock
from tests.support.webhook_receiver import RecordingReceiver, some_events


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
