"""EventService's webhook RPCs over a real gRPC server on 127.0.0.1:0, in a production setting
(ORDERPAY_ENV=production): bad URLs refused with a reason, the secret shown once, the subscriber list,
switching on and off, rotation, and who may call them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from orderpay.v1 import events_pb2, events_pb2_grpc
from server.app import App
from server.bootstrap import build_app
from tests.support.rich_status import Failure, failure_of
from tests.support.serving import ServingThread
from tests.support.settings import settings_for

ROOT = Path(__file__).resolve().parents[2]
FEED = (("authorization", "Bearer test-feed-token"),)
BFF = (("authorization", "Bearer test-bff-token"),)
ADMIN = (("authorization", "Bearer test-admin-token"),)
TOKENS = "bff:test-bff-token,admin:test-admin-token,feed:test-feed-token"


def refused(call: Any, request: Any, **kwargs: Any) -> Failure:
    with pytest.raises(grpc.RpcError) as info:
        call(request, **kwargs)
    return failure_of(info.value)


@pytest.fixture(scope="module")
def prod_app(database_url: str) -> Iterator[App]:
    application = build_app(
        settings_for(database_url, api_tokens=TOKENS, env="production"), payments_required=False
    )
    yield application
    application.close()


@pytest.fixture(scope="module")
def target(prod_app: App) -> Iterator[str]:
    server = ServingThread(prod_app)
    yield f"127.0.0.1:{server.port}"
    server.stop(1)


@pytest.fixture(scope="module")
def events(target: str) -> Iterator[events_pb2_grpc.EventServiceStub]:
    with grpc.insecure_channel(target) as channel:
        yield events_pb2_grpc.EventServiceStub(channel)


def cli(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORDERPAY_GRPC_TARGET": target, "ORDERPAY_TOKEN": "test-feed-token"}
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", "events", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def register(
    events: Any, name: str, url: str | None, metadata: Any = FEED
) -> events_pb2.RegisterSubscriberResponse:
    request = events_pb2.RegisterSubscriberRequest(subscriber=name)
    if url is not None:
        request.webhook_url = url
    return events.RegisterSubscriber(request, metadata=metadata)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://127.0.0.1/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("https://", "names no host"),
        ("https://user:pw@crm.example.com/hook", "credentials"),
        ("https://crm.example.com:99999/hook", "bad port"),
        ("https://crm.example.com/ho ok", "no spaces"),
        ("http://crm.example.com/hook", "must be https:// in production"),
    ],
)
def test_a_bad_webhook_url_is_invalid_argument_with_a_reason(
    events: Any, rid: str, url: str, why: str
) -> None:
    failure = refused(
        events.RegisterSubscriber,
        events_pb2.RegisterSubscriberRequest(subscriber=f"s-{rid}", webhook_url=url),
        metadata=FEED,
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "WEBHOOK_URL_REFUSED")
    assert failure.fields == {"webhook_url"}
    assert why in failure.message
    listed = events.ListSubscribers(events_pb2.ListSubscribersRequest(), metadata=FEED).subscribers
    assert f"s-{rid}" not in {s.subscriber for s in listed}, "a refused registration registers nothing"


def test_the_secret_is_shown_once_and_never_listed(events: Any, rid: str) -> None:
    name = f"crm-{rid}"
    first = register(events, name, "https://crm.example.com/orderpay")
    assert first.webhook.secret.startswith("whsec_")
    assert first.webhook.state == events_pb2.WEBHOOK_STATE_ACTIVE
    again = register(events, name, "https://crm.example.com/orderpay")
    assert again.webhook.secret == ""
    assert again.webhook.url == "https://crm.example.com/orderpay"
    plain = register(events, name, None)  # no webhook_url: the webhook stays as it is
    assert plain.webhook.url == "https://crm.example.com/orderpay"
    answer = events.ListSubscribers(events_pb2.ListSubscribersRequest(), metadata=ADMIN)
    listed = {s.subscriber: s for s in answer.subscribers}
    assert listed[name].webhook.url == "https://crm.example.com/orderpay"
    assert listed[name].webhook.secret == ""
    assert listed[name].lag == answer.head_position - listed[name].acked_position
    rotated = events.RotateWebhookSecret(
        events_pb2.RotateWebhookSecretRequest(subscriber=name), metadata=FEED
    )
    assert rotated.webhook.secret.startswith("whsec_")
    assert rotated.webhook.secret != first.webhook.secret
    assert rotated.webhook.HasField("previous_secret_expires_at")


def test_loopback_http_is_accepted_in_production_and_an_empty_url_removes_the_webhook(
    events: Any, rid: str
) -> None:
    name = f"local-{rid}"
    assert register(events, name, "http://127.0.0.1:9/hook").webhook.url == "http://127.0.0.1:9/hook"
    assert not register(events, name, "").HasField("webhook")
    listed = {
        s.subscriber: s
        for s in events.ListSubscribers(events_pb2.ListSubscribersRequest(), metadata=FEED).subscribers
    }
    assert not listed[name].HasField("webhook")


def test_switching_a_webhook_off_and_on(events: Any, rid: str) -> None:
    name = f"wh-{rid}"
    register(events, name, "https://crm.example.com/h")
    off = events.SetWebhookEnabled(
        events_pb2.SetWebhookEnabledRequest(subscriber=name, enabled=False), metadata=ADMIN
    )
    assert off.subscriber.webhook.state == events_pb2.WEBHOOK_STATE_DISABLED
    assert off.subscriber.webhook.HasField("disabled_at")
    on = events.SetWebhookEnabled(
        events_pb2.SetWebhookEnabledRequest(subscriber=name, enabled=True), metadata=FEED
    )
    assert on.subscriber.webhook.state == events_pb2.WEBHOOK_STATE_ACTIVE
    assert on.subscriber.webhook.consecutive_failures == 0


def test_unknown_subscribers_and_subscribers_without_a_webhook_say_why(events: Any, rid: str) -> None:
    request = events_pb2.SetWebhookEnabledRequest(subscriber=f"ghost-{rid}", enabled=True)
    failure = refused(events.SetWebhookEnabled, request, metadata=FEED)
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "SUBSCRIBER_NOT_FOUND")
    register(events, f"bare-{rid}", None)
    failure = refused(
        events.RotateWebhookSecret,
        events_pb2.RotateWebhookSecretRequest(subscriber=f"bare-{rid}"),
        metadata=FEED,
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "WEBHOOK_NOT_FOUND")
    failure = refused(
        events.SetWebhookEnabled, events_pb2.SetWebhookEnabledRequest(subscriber="no spaces"), metadata=FEED
    )
    assert failure.code is grpc.StatusCode.INVALID_ARGUMENT


def test_the_bff_may_not_register_a_webhook_or_list_subscribers(events: Any, rid: str) -> None:
    failure = refused(
        events.RegisterSubscriber,
        events_pb2.RegisterSubscriberRequest(subscriber=f"b-{rid}", webhook_url="https://x.example.com/"),
        metadata=BFF,
    )
    assert failure.code is grpc.StatusCode.PERMISSION_DENIED
    assert (
        refused(events.ListSubscribers, events_pb2.ListSubscribersRequest(), metadata=BFF).code
        is grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        refused(events.ListSubscribers, events_pb2.ListSubscribersRequest()).code
        is grpc.StatusCode.UNAUTHENTICATED
    )


def test_the_cli_registers_lists_and_switches_a_webhook(target: str, rid: str, prod_app: App) -> None:
    if not prod_app.settings.database_url.startswith("sqlite"):
        pytest.skip("the CLI speaks gRPC only: once, on SQLite, is enough (six processes)")
    name = f"cli-{rid}"
    registered = cli(target, "register", name, "--webhook-url", "https://crm.example.com/cli")
    assert registered.returncode == 0, registered.stderr
    assert "webhook secret (shown once, keep it): whsec_" in registered.stdout
    refused_url = cli(target, "register", f"x-{rid}", "--webhook-url", "http://crm.example.com/")
    assert refused_url.returncode != 0
    assert "WEBHOOK_URL_REFUSED" in refused_url.stdout + refused_url.stderr
    off = cli(target, "webhook", "disable", name)
    assert off.returncode == 0, off.stderr
    assert "webhook DISABLED" in off.stdout
    listed = cli(target, "subscribers")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(name))
    assert "DISABLED" in row
    assert "https://crm.example.com/cli" in row
    assert "whsec_" not in listed.stdout
    on = cli(target, "webhook", "enable", name)
    assert "webhook ACTIVE" in on.stdout
    rotated = cli(target, "webhook", "rotate", name)
    assert "new secret (shown once, keep it): whsec_" in rotated.stdout
