"""Pure domain rules: no sockets, no database."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.catalogue import Product, ProductKind, product_from_mapping
from server.domain.errors import InvalidArgumentError, InvalidStateTransitionError
from server.domain.membership import Membership, extended
from server.domain.order import TRANSITIONS, CreateOrder, OrderStatus, check_transition, new_out_trade_no
from server.domain.refund import RefundStatus
from server.domain.validation import OUT_TRADE_NO
from server.service.orders import validate_create
from server.service.paging import decode_page_token, encode_page_token
from server.service.shapes import Cursor

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_legacy_codes_match_uni_pay() -> None:
    assert {s.value: s.legacy_code for s in OrderStatus} == {
        "UNPAID": 0,
        "PAID": 1,
        "PARTIALLY_REFUNDED": 2,
        "REFUNDED": 3,
        "CLOSED": -1,
    }


@pytest.mark.parametrize("current", list(OrderStatus))
@pytest.mark.parametrize("target", list(OrderStatus))
def test_only_declared_transitions_are_allowed(current: OrderStatus, target: OrderStatus) -> None:
    if target in TRANSITIONS[current]:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidStateTransitionError):
            check_transition(current, target)


def test_terminal_states_have_no_exit() -> None:
    assert TRANSITIONS[OrderStatus.CLOSED] == TRANSITIONS[OrderStatus.REFUNDED] == frozenset()


def test_fingerprint_ignores_the_key_but_not_the_request() -> None:
    a = CreateOrder("k1", "u", "p", 1, "d", "x")
    assert a.fingerprint() == CreateOrder("k2", "u2", "p", 1, "d", "x").fingerprint()
    assert a.fingerprint() != CreateOrder("k1", "u", "p", 2, "d", "x").fingerprint()
    assert a.fingerprint() != CreateOrder("k1", "u", "p", 1, None, "x").fingerprint()


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)))  # noqa: DTZ001 - naive bounds
def test_out_trade_no_always_fits_wechat_rules(moment: datetime) -> None:
    assert OUT_TRADE_NO.fullmatch(new_out_trade_no(moment.replace(tzinfo=UTC)))


def test_membership_extension_stacks_or_starts_today() -> None:
    assert extended(None, NOW, 30) == NOW + timedelta(days=30)
    expired = NOW - timedelta(days=3)
    assert extended(expired, NOW, 30) == NOW + timedelta(days=30)
    active = NOW + timedelta(days=10)
    assert extended(active, NOW, 30) == NOW + timedelta(days=40)
    assert Membership("u", active).is_active(NOW)
    assert not Membership("u", expired).is_active(NOW)


def test_price_comes_from_the_catalogue() -> None:
    plan = Product("vip", ProductKind.VIP_PLAN, "t", "d", 1800, duration_days=30)
    assert plan.total_fee(3) == 5400


@pytest.mark.parametrize(
    "entry",
    [
        {"product_id": "x", "kind": "NOPE", "title": "t", "price_fen": 1},
        {"product_id": "x", "kind": "GOODS", "title": "t", "price_fen": 0},
        {"product_id": "x", "kind": "GOODS", "title": "t", "price_fen": 1.5},
        {"product_id": "x", "kind": "GOODS", "title": "t", "price_fen": 1, "stock": -1},
        {"product_id": "x", "kind": "VIP_PLAN", "title": "t", "price_fen": 1},
        {"kind": "GOODS", "title": "t", "price_fen": 1},
    ],
)
def test_bad_catalogue_entries_are_refused(entry: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        product_from_mapping(entry)


def test_validation_reports_every_problem_at_once() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        validate_create(CreateOrder("", "", "", 0))
    assert {v.field for v in info.value.violations} == {"request_id", "user_id", "product_id", "quantity"}


def test_page_tokens_round_trip_and_bind_the_query() -> None:
    cursor = Cursor(NOW, 42)
    token = encode_page_token(cursor, "u", OrderStatus.PAID)
    assert decode_page_token(token, "u", OrderStatus.PAID) == cursor
    for user, status in (("other", OrderStatus.PAID), ("u", None)):
        with pytest.raises(InvalidArgumentError):
            decode_page_token(token, user, status)


@given(st.text(max_size=80))
def test_arbitrary_page_tokens_never_crash(token: str) -> None:
    with contextlib.suppress(InvalidArgumentError):
        decode_page_token(token, "u", None)


def test_refunds_that_count_against_the_paid_amount() -> None:
    # ABNORMAL money left the merchant and still belongs to the payer: it is not refundable twice.
    assert {s for s in RefundStatus if s.counts_against_paid} == {
        RefundStatus.PROCESSING,
        RefundStatus.SUCCESS,
        RefundStatus.ABNORMAL,
    }


def test_abnormal_is_not_final_and_reports_only_move_forward() -> None:
    assert {s for s in RefundStatus if s.final} == {RefundStatus.SUCCESS, RefundStatus.CLOSED}
    abnormal, processing = RefundStatus.ABNORMAL, RefundStatus.PROCESSING
    assert abnormal.may_become(RefundStatus.SUCCESS)
    assert abnormal.may_become(RefundStatus.CLOSED)
    assert not abnormal.may_become(abnormal)
    assert not abnormal.may_become(processing)  # only an operator's follow-up re-opens it
    assert processing.may_become(abnormal)
    assert not RefundStatus.SUCCESS.may_become(RefundStatus.CLOSED)
