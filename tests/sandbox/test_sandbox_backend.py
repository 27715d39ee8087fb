"""The backend's rules on a controlled clock: validity windows and lazy expiry (no sockets)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sandbox.api.errors import ApiError
from sandbox.api.validation import parse_prepay
from sandbox.engine.backend import Backend


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def request(out_trade_no: str = "T000001", **extra: object) -> bytes:
    body = {
        "appid": "wx0123456789abcdef",
        "mchid": "1900000109",
        "description": "d",
        "out_trade_no": out_trade_no,
        "notify_url": "https://m.example.com/n",
        "amount": {"total": 1},
        "payer": {"openid": "o1"},
        **extra,
    }
    return json.dumps(body).encode()


def test_prepay_id_is_reissued_after_two_hours() -> None:
    clock = Clock()
    backend = Backend(clock)
    first, created = backend.prepay(parse_prepay("jsapi", request()))
    first_id = first.prepay_id
    clock.now += timedelta(hours=1, minutes=59)
    assert backend.prepay(parse_prepay("jsapi", request()))[0].prepay_id == first_id
    clock.now += timedelta(minutes=2)
    again, created_again = backend.prepay(parse_prepay("jsapi", request()))
    assert (created, created_again) == (True, False)
    assert again.prepay_id != first_id


def test_an_unpaid_order_closes_when_its_pay_window_ends() -> None:
    clock = Clock()
    backend = Backend(clock)
    expire = (clock.now + timedelta(minutes=10)).isoformat()
    backend.prepay(parse_prepay("jsapi", request(time_expire=expire)))
    clock.now += timedelta(minutes=10)
    assert backend.trade("T000001").trade_state == "CLOSED"
    with pytest.raises(ApiError) as raised:
        backend.pay("T000001")
    assert raised.value.code == "ORDER_CLOSED"


def test_default_pay_window_is_seven_days() -> None:
    clock = Clock()
    backend = Backend(clock)
    trade, _ = backend.prepay(parse_prepay("jsapi", request()))
    assert trade.expires_at == clock.now + timedelta(days=7)
    clock.now += timedelta(days=6, hours=23)
    assert backend.pay("T000001")[0].trade_state == "SUCCESS"
