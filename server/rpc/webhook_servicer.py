"""EventService's webhook RPCs (issue 19 item 4), mixed into the EventServicer: registering with a
webhook URL, the subscriber list, switching a webhook on and off, rotating its secret."""

from __future__ import annotations

from typing import Any

from orderpay.v1 import events_pb2 as pb
from server.domain.webhooks import Webhook, WebhookState
from server.rpc.call_context import current_caller
from server.rpc.mapping import timestamp
from server.service.feed import FeedService
from server.service.webhooks import SubscriberView, WebhookService
from server.serving.offload import Runner

Context = Any
_STATES = {WebhookState.ACTIVE: pb.WEBHOOK_STATE_ACTIVE, WebhookState.DISABLED: pb.WEBHOOK_STATE_DISABLED}


def webhook_to_pb(webhook: Webhook, secret: str = "") -> pb.Webhook:
    """Never the stored secret: `secret` is set only by the call that generated it."""
    return pb.Webhook(
        url=webhook.url,
        state=_STATES[webhook.state],
        secret=secret,
        consecutive_failures=webhook.consecutive_failures,
        last_success_at=timestamp(webhook.last_success_at),
        last_error=webhook.last_error,
        last_error_at=timestamp(webhook.last_error_at),
        failing_since=timestamp(webhook.failing_since),
        next_attempt_at=timestamp(webhook.next_attempt_at),
        disabled_at=timestamp(webhook.disabled_at),
        previous_secret_expires_at=timestamp(webhook.previous_until if webhook.previous_secret else None),
    )


def subscriber_to_pb(view: SubscriberView) -> pb.Subscriber:
    s = view.subscriber
    return pb.Subscriber(
        subscriber=s.name,
        acked_position=s.acked_position,
        lag=view.lag,
        acked_at=timestamp(s.acked_at),
        last_seen_at=timestamp(s.last_seen_at),
        webhook=webhook_to_pb(view.webhook) if view.webhook is not None else None,
    )


class WebhookRpcs:
    _feed: FeedService
    _webhooks: WebhookService
    _db: Runner

    async def RegisterSubscriber(
        self, request: pb.RegisterSubscriberRequest, context: Context
    ) -> pb.RegisterSubscriberResponse:
        if not request.HasField("webhook_url"):  # as before issue 19 item 4: the webhook is left alone
            subscriber = await self._db.run(self._feed.register, request.subscriber)
            webhook, secret = await self._db.run(self._webhooks.webhook_of, subscriber.name), ""
        else:
            done = await self._db.run(self._webhooks.register, request.subscriber, request.webhook_url)
            subscriber, webhook, secret = done.subscriber, done.webhook, done.secret
        head = await self._db.run(self._feed.head)
        return pb.RegisterSubscriberResponse(
            subscriber=subscriber.name,
            acked_position=subscriber.acked_position,
            head_position=head,
            webhook=webhook_to_pb(webhook, secret) if webhook is not None else None,
        )

    async def ListSubscribers(
        self, request: pb.ListSubscribersRequest, context: Context
    ) -> pb.ListSubscribersResponse:
        views = await self._db.run(self._webhooks.subscribers)
        head = views[0].head if views else await self._db.run(self._feed.head)
        return pb.ListSubscribersResponse(
            head_position=head, subscribers=[subscriber_to_pb(v) for v in views]
        )

    async def SetWebhookEnabled(
        self, request: pb.SetWebhookEnabledRequest, context: Context
    ) -> pb.SetWebhookEnabledResponse:
        caller = current_caller()
        view = await self._db.run(self._webhooks.set_enabled, request.subscriber, request.enabled, caller)
        return pb.SetWebhookEnabledResponse(subscriber=subscriber_to_pb(view))

    async def RotateWebhookSecret(
        self, request: pb.RotateWebhookSecretRequest, context: Context
    ) -> pb.RotateWebhookSecretResponse:
        done = await self._db.run(self._webhooks.rotate, request.subscriber)
        assert done.webhook is not None  # noqa: S101 - rotate raises without one
        return pb.RotateWebhookSecretResponse(webhook=webhook_to_pb(done.webhook, done.secret))
