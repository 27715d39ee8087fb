"""POST /wxpay/notify and the probes, through a real aiohttp server and a real database."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import peewee as pw
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from server.adapters.db import make_database
from server.adapters.unit_of_work import unit_of_work_factory
from server.app import App
from server.domain.notification import NotificationStatus
from server.metrics import REGISTRY
from server.notify.app import make_metrics_app, make_notify_app
from server.service.errors import TransientError
from server.service.notifications import NotificationService
from tests.notify.fakes import FakeLedger, service_with
from tests.notify.rows import NotificationRows
from tests.support.wechat import Delivery, WeChatNotifier, paid_resource, refund_resource

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
MAX_BODY = 16 * 1024


@pytest.fixture
async def client(aiohttp_client: MakeClient, service: NotificationService, store: NotificationRows) -> Client:
    return await aiohttp_client(make_notify_app(service, max_body_bytes=MAX_BODY, ready_check=store.ping))


async def post(client: Client, delivery: Delivery) -> tuple[int, dict[str, Any] | None]:
    response = await client.post("/wxpay/notify", data=delivery.body, headers=delivery.headers)
    text = await response.text()
    return response.status, (json.loads(text) if text else None)


def counted(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("orderpay_notifications_total", {"account": "default", "outcome": outcome})
        or 0.0
    )


async def test_valid_notification_is_applied_once_and_acknowledged(
    client: Client, notifier: WeChatNotifier, ledger: FakeLedger, store: NotificationRows, rid: str
) -> None:
    before = counted("applied")
    delivery = notifier.deliver(paid_resource(f"T{rid}", 100))
    status, body = await post(client, delivery)
    assert (status, body) == (204, None)
    assert ledger.applied[f"T{rid}"] == 1
    assert ledger.sources == ["notify"]
    row = store.get(json.loads(delivery.body)["id"])
    assert row is not None
    assert (row.status, row.outcome) == (NotificationStatus.PROCESSED, "applied")
    assert set(row.headers) == {h for h in delivery.headers if h.startswith("Wechatpay-")}
    assert row.body.encode() == delivery.body
    assert counted("applied") == before + 1


async def test_concurrent_duplicates_apply_once_and_all_acknowledge(
    client: Client, notifier: WeChatNotifier, ledger: FakeLedger, rid: str
) -> None:
    delivery = notifier.deliver(paid_resource(f"T{rid}", 100))
    answers = await asyncio.gather(*(post(client, delivery) for _ in range(5)))
    assert [status for status, _ in answers] == [204] * 5
    assert ledger.applied[f"T{rid}"] == 1


async def test_replayed_body_is_a_duplicate_and_not_reapplied(
    client: Client, notifier: WeChatNotifier, ledger: FakeLedger, rid: str
) -> None:
    delivery = notifier.deliver(paid_resource(f"T{rid}", 100))
    assert (await post(client, delivery))[0] == 204
    before = counted("duplicate")
    replay = Delivery(notifier.sign(delivery.body), delivery.body)  # freshly signed, same id
    assert (await post(client, replay))[0] == 204
    assert ledger.calls[f"T{rid}"] == 1
    assert counted("duplicate") == before + 1


async def test_refund_events_go_to_the_refund_service(
    client: Client, notifier: WeChatNotifier, ledger: FakeLedger, rid: str
) -> None:
    resource = refund_resource(f"T{rid}", f"R{rid}", 50)
    status, _ = await post(client, notifier.deliver(resource, event_type="REFUND.SUCCESS"))
    assert status == 204
    assert ledger.applied[f"R{rid}"] == 1


async def test_unknown_event_types_are_stored_and_acknowledged(
    client: Client, notifier: WeChatNotifier, ledger: FakeLedger, store: NotificationRows, rid: str
) -> None:
    delivery = notifier.deliver(paid_resource(f"T{rid}", 100), event_type="PROFITSHARING.OK")
    assert (await post(client, delivery))[0] == 204
    row = store.get(json.loads(delivery.body)["id"])
    assert row is not None
    assert row.outcome == "unhandled_event"
    assert not ledger.calls


@pytest.mark.parametrize("outcome", ["amount_mismatch", "unknown_order"])
async def test_recorded_business_outcomes_are_acknowledged(
    client: Client,
    notifier: WeChatNotifier,
    ledger: FakeLedger,
    store: NotificationRows,
    rid: str,
    outcome: str,
) -> None:
    ledger.scripted[f"T{rid}"] = outcome
    delivery = notifier.deliver(paid_resource(f"T{rid}", 100))
    assert (await post(client, delivery))[0] == 204
    row = store.get(json.loads(delivery.body)["id"])
    assert row is not None
    assert (row.status, row.outcome) == (NotificationStatus.PROCESSED, outcome)


def _forged(n: WeChatNotifier, d: Delivery) -> Delivery:
    return Delivery(n.sign(b'{"other": "body"}'), d.body)


def _signtest(n: WeChatNotifier, d: Delivery) -> Delivery:
    return Delivery({**d.headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + "A" * 20}, d.body)


def _stale(n: WeChatNotifier, d: Delivery) -> Delivery:
    return Delivery(n.sign(d.body, timestamp=int(d.headers["Wechatpay-Timestamp"]) - 301), d.body)


def _unknown_serial(n: WeChatNotifier, d: Delivery) -> Delivery:
    return Delivery(n.sign(d.body, serial="PUB_KEY_ID_UNKNOWN"), d.body)


def _missing_headers(n: WeChatNotifier, d: Delivery) -> Delivery:
    return Delivery({k: v for k, v in d.headers.items() if k != "Wechatpay-Nonce"}, d.body)


def _garbage_json(n: WeChatNotifier, d: Delivery) -> Delivery:
    return Delivery(n.sign(b"{not json"), b"{not json")


def _undecryptable(n: WeChatNotifier, d: Delivery) -> Delivery:
    envelope = json.loads(d.body)
    envelope["resource"]["associated_data"] = "tampered"
    body = json.dumps(envelope).encode()
    return Delivery(n.sign(body), body)


def _timestamp(value: str) -> Callable[[WeChatNotifier, Delivery], Delivery]:
    def tamper(n: WeChatNotifier, d: Delivery) -> Delivery:
        return Delivery({**d.headers, "Wechatpay-Timestamp": value}, d.body)

    tamper.__name__ = f"_timestamp_{len(value)}_{value[:1].encode().hex()}"
    return tamper


REJECTIONS = [
    (_timestamp("\u00b2"), 400, "missing_headers"),  # superscript two: isdigit() but not a number
    (_timestamp("1" * 4300), 400, "missing_headers"),  # would overflow the skew arithmetic
    (_timestamp("\uff11\uff17\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10"), 400, "missing_headers"),
    (_forged, 401, "bad_signature"),
    (_signtest, 401, "bad_signature"),
    (_stale, 401, "stale"),
    (_unknown_serial, 401, "unknown_serial"),
    (_missing_headers, 400, "missing_headers"),
    (_garbage_json, 400, "malformed"),
    (_undecryptable, 400, "undecryptable"),
]


@pytest.mark.parametrize(
    ("tamper", "status", "outcome"), REJECTIONS, ids=[r[2] + r[0].__name__ for r in REJECTIONS]
)
async def test_rejected_notifications_answer_fail_and_apply_nothing(
    client: Client,
    notifier: WeChatNotifier,
    ledger: FakeLedger,
    store: NotificationRows,
    rid: str,
    tamper: Callable[[WeChatNotifier, Delivery], Delivery],
    status: int,
    outcome: str,
) -> None:
    before = counted(outcome)
    genuine = notifier.deliver(paid_resource(f"T{rid}", 100))
    answer, body = await post(client, tamper(notifier, genuine))
    assert answer == status
    assert body is not None
    assert body["code"] == "FAIL"
    assert body["message"]
    assert not ledger.calls
    assert store.get(json.loads(genuine.body)["id"]) is None
    assert counted(outcome) == before + 1


async def test_oversized_body_is_413_without_reading_it_all(
    client: Client, notifier: WeChatNotifier, ledger: FakeLedger
) -> None:
    body = b"{" + b" " * MAX_BODY + b"}"
    answer, payload = await post(client, Delivery(notifier.sign(body), body))
    assert answer == 413
    assert payload is not None
    assert payload["code"] == "FAIL"
    assert not ledger.calls


async def test_oversized_chunked_body_is_413(client: Client, notifier: WeChatNotifier) -> None:
    async def chunks() -> Any:
        for _ in range(8):
            yield b" " * (MAX_BODY // 4)

    response = await client.post("/wxpay/notify", data=chunks(), headers=notifier.sign(b""))
    assert response.status == 413


@pytest.mark.parametrize("fault", [pw.OperationalError("database is locked"), TransientError("not ready")])
async def test_transient_fault_answers_5xx_rolls_back_and_the_retry_applies_it(
    client: Client,
    notifier: WeChatNotifier,
    ledger: FakeLedger,
    store: NotificationRows,
    rid: str,
    fault: Exception,
) -> None:
    ledger.faults.append(fault)
    delivery = notifier.deliver(paid_resource(f"T{rid}", 100))
    notification_id = json.loads(delivery.body)["id"]
    answer, body = await post(client, delivery)
    assert answer == 503
    assert body is not None
    assert body["code"] == "FAIL"
    assert (
        store.get(notification_id) is None
    )  # stored, applied and marked in one transaction: all rolled back
    assert (await post(client, delivery))[0] == 204  # WeChat's retry carries it
    row = store.get(notification_id)
    assert row is not None
    assert (row.status, row.outcome) == (NotificationStatus.PROCESSED, "applied")
    assert ledger.applied[f"T{rid}"] == 1


async def test_a_row_left_received_is_finished_by_reprocessing(
    notifier: WeChatNotifier,
    ledger: FakeLedger,
    store: NotificationRows,
    service: NotificationService,
    notify_app: App,
    rid: str,
) -> None:
    delivery = notifier.deliver(paid_resource(f"T{rid}", 100))
    notification_id = json.loads(delivery.body)["id"]
    store.store(
        notification_id, "TRANSACTION.SUCCESS", delivery.headers, delivery.body.decode(), notify_app.clock()
    )
    assert service.reprocess_pending(older_than_s=0, limit=1000) >= 1
    row = store.get(notification_id)
    assert row is not None
    assert (row.status, row.outcome) == (NotificationStatus.PROCESSED, "applied")
    assert ledger.applied[f"T{rid}"] == 1


async def test_unexpected_error_is_500_fail_without_traceback(
    client: Client, notifier: WeChatNotifier, ledger: FakeLedger, store: NotificationRows, rid: str
) -> None:
    ledger.faults.append(KeyError("secret-looking-detail"))
    delivery = notifier.deliver(paid_resource(f"T{rid}", 100))
    answer, body = await post(client, delivery)
    assert answer == 500
    assert body == {"code": "FAIL", "message": "internal error"}
    row = store.get(json.loads(delivery.body)["id"])
    assert row is not None
    assert (row.status, row.outcome) == ("FAILED", "error")


async def test_database_down_answers_503_and_readyz_says_unavailable(
    aiohttp_client: MakeClient,
    notifier: WeChatNotifier,
    ledger: FakeLedger,
    bundle_dir: Path,
    notify_app: App,
) -> None:
    unreachable = make_database("postgresql://postgres@127.0.0.1:1/none", pool_size=2)
    down = NotificationRows(unreachable, unit_of_work_factory(unreachable))
    service = service_with(unit_of_work_factory(unreachable), ledger, bundle_dir, notify_app)
    client = await aiohttp_client(make_notify_app(service, max_body_bytes=MAX_BODY, ready_check=down.ping))
    answer, body = await post(client, notifier.deliver(paid_resource("T-down", 100)))
    assert answer == 503
    assert body is not None
    assert body["code"] == "FAIL"
    assert not ledger.calls
    assert (await client.get("/readyz")).status == 503


async def test_slow_processing_answers_503_in_time_and_finishes_anyway(
    aiohttp_client: MakeClient,
    notifier: WeChatNotifier,
    store: NotificationRows,
    bundle_dir: Path,
    notify_app: App,
    rid: str,
) -> None:
    release = threading.Event()
    slow = _BlockingLedger(release)
    service = service_with(notify_app.uow, slow, bundle_dir, notify_app)
    app = make_notify_app(service, max_body_bytes=MAX_BODY, ready_check=store.ping, answer_within_s=0.2)
    client = await aiohttp_client(app)
    delivery = notifier.deliver(paid_resource(f"T{rid}", 100))
    answer, body = await post(client, delivery)
    assert answer == 503
    assert body is not None
    assert body["code"] == "FAIL"
    release.set()
    notification_id = json.loads(delivery.body)["id"]
    await _until(
        lambda: (row := store.get(notification_id)) is not None and row.status == NotificationStatus.PROCESSED
    )
    assert slow.applied[f"T{rid}"] == 1


class _BlockingLedger(FakeLedger):
    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self._release = release

    def _apply(self, key: str, source: str) -> Any:
        assert self._release.wait(10), "test never released the ledger"
        return super()._apply(key, source)


async def _until(condition: Callable[[], bool], deadline_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not await asyncio.to_thread(condition):
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(0.01)


async def test_probes(client: Client, aiohttp_client: MakeClient, service: NotificationService) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/metrics")).status == 404  # not on the internet-facing listener
    metrics_client = await aiohttp_client(make_metrics_app())
    metrics = await metrics_client.get("/metrics")
    assert metrics.status == 200
    assert "orderpay_notifications_total" in await metrics.text()
    assert metrics.headers["Content-Type"].startswith("text/plain")
    not_ready = await aiohttp_client(
        make_notify_app(service, max_body_bytes=MAX_BODY, ready_check=lambda: False)
    )
    assert (await not_ready.get("/readyz")).status == 503


async def test_every_answer_carries_a_request_id(client: Client) -> None:
    given = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["X-Request-Id"] == "abc-123"
    hostile = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert hostile.headers["X-Request-Id"] != "bad id\twith spaces"


async def test_what_the_service_logs_carries_the_request_id(
    client: Client, notifier: WeChatNotifier, ledger: FakeLedger, rid: str
) -> None:
    delivery = notifier.deliver(paid_resource(f"T{rid}", 100))
    headers = {**delivery.headers, "X-Request-Id": f"req-{rid}"}
    response = await client.post("/wxpay/notify", data=delivery.body, headers=headers)
    assert response.status == 204
    assert ledger.log_context[-1]["request_id"] == f"req-{rid}"  # bound in the sidecar, seen in the use case


async def test_one_canonical_line_without_body_signature_or_resource(
    client: Client, notifier: WeChatNotifier, rid: str
) -> None:
    delivery = notifier.deliver(paid_resource(f"T{rid}", 100))
    with capture_logs() as lines:
        assert (await post(client, delivery))[0] == 204
    canonical = [line for line in lines if line["event"] == "notification"]
    assert len(canonical) == 1
    line = canonical[0]
    assert line["outcome"] == "applied"
    assert line["status"] == 204
    assert line["out_trade_no"] == f"T{rid}"
    assert line["notification_id"] == json.loads(delivery.body)["id"]
    assert line["request_id"]
    assert line["duration_ms"] >= 0
    text = repr(lines)
    assert delivery.headers["Wechatpay-Signature"] not in text
    assert json.loads(delivery.body)["resource"]["ciphertext"] not in text
    assert "payer" not in text
