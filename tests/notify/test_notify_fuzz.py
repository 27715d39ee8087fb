"""Property: a notification that is not exactly what WeChat signed is never accepted, and never crashes."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

import peewee as pw
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from server.adapters.faults import TRANSIENT_DATABASE_ERRORS
from server.domain.clock import utc_now
from server.service.notifications import Disposition, NotificationService
from server.service.ports import UnitOfWork
from server.wxpay.credentials import load_credentials
from server.wxpay.notification import notification_parser
from tests.notify.fakes import FakeLedger
from tests.support.wechat import Delivery, WeChatNotifier, make_bundle, paid_resource


def _no_database() -> AbstractContextManager[UnitOfWork]:
    raise pw.OperationalError("this test has no database")


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOTIFIER = WeChatNotifier()  # loading the RSA key is the slow part: once per module
SIGNED_HEADERS = ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> tuple[NotificationService, FakeLedger, Delivery]:
    # No database work is expected: one would fail as "database down", turning an acceptance into a retry.
    credentials = load_credentials(make_bundle(tmp_path_factory.mktemp("keys")))
    ledger = FakeLedger()
    service = NotificationService(
        uow=_no_database,
        clock=utc_now,
        parse=notification_parser(credentials, credentials.verifier_keys(), 300),
        payments=ledger,
        refunds=ledger,
        transient_faults=TRANSIENT_DATABASE_ERRORS,
    )
    genuine = NOTIFIER.deliver(paid_resource("T-fuzz-never", 100))
    return service, ledger, genuine


def assert_rejected(
    service: NotificationService, ledger: FakeLedger, headers: dict[str, str], body: bytes
) -> None:
    receipt = service.receive(headers, body)
    assert receipt.disposition in {Disposition.REJECT_AUTH, Disposition.REJECT_MALFORMED}, receipt
    assert not ledger.calls


@FUZZ
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_any_changed_body_byte_is_rejected(
    fuzz_target: tuple[NotificationService, FakeLedger, Delivery], position: int, value: int
) -> None:
    service, ledger, genuine = fuzz_target
    body = bytearray(genuine.body)
    position %= len(body)
    assume(body[position] != value)
    body[position] = value
    assert_rejected(service, ledger, genuine.headers, bytes(body))


@FUZZ
@given(name=st.sampled_from(SIGNED_HEADERS), value=st.text(max_size=80) | st.none())
def test_any_changed_or_missing_signed_header_is_rejected(
    fuzz_target: tuple[NotificationService, FakeLedger, Delivery], name: str, value: str | None
) -> None:
    service, ledger, genuine = fuzz_target
    original = genuine.headers[name]
    # A serial in another letter case names the same key; a padded value is the same value.
    assume(value is None or value.strip().upper() != original.upper())
    headers = {k: v for k, v in genuine.headers.items() if k != name}
    if value is not None:
        headers[name] = value
    assert_rejected(service, ledger, headers, genuine.body)


@FUZZ
@given(body=st.binary(max_size=300))
def test_signed_garbage_is_rejected_as_malformed(
    fuzz_target: tuple[NotificationService, FakeLedger, Delivery], body: bytes
) -> None:
    service, ledger, _ = fuzz_target
    assert_rejected(service, ledger, NOTIFIER.sign(body), body)


@FUZZ
@given(
    envelope=st.fixed_dictionaries(
        {},
        optional={
            "id": st.text(max_size=70) | json_values,
            "event_type": st.sampled_from(["TRANSACTION.SUCCESS", "REFUND.SUCCESS"]) | json_values,
            "resource_type": st.just("encrypt-resource") | json_values,
            "resource": st.fixed_dictionaries(
                {},
                optional={
                    "algorithm": st.just("AEAD_AES_256_GCM") | json_values,
                    "nonce": st.text(max_size=16) | json_values,
                    "ciphertext": st.text(max_size=60) | json_values,
                    "associated_data": st.text(max_size=16) | json_values,
                },
            )
            | json_values,
        },
    )
)
def test_signed_envelopes_with_wrong_shapes_are_rejected(
    fuzz_target: tuple[NotificationService, FakeLedger, Delivery], envelope: dict[str, Any]
) -> None:
    service, ledger, _ = fuzz_target
    body = json.dumps(envelope).encode()
    assert_rejected(service, ledger, NOTIFIER.sign(body), body)
