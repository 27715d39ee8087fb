"""The shapes of the operator's read side (issue 13): what admin queries return, and the page token."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.domain.errors import FieldViolation, InvalidArgumentError
from server.domain.order import Order
from server.domain.pages import valid_position
from server.domain.refund import Refund


@dataclass(frozen=True)
class OrderFilter:
    status: str | None = None
    fulfilment: str | None = None
    product_id: str | None = None
    user_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    needs_attention: bool = False
    text: str | None = None  # order_id, out_trade_no (商户订单号) or transaction_id (微信支付单号)
    account: str | None = None  # the merchant account that took the order (issue 18)


@dataclass(frozen=True)
class OrdersPage:
    orders: list[Order]
    next_page_token: str


@dataclass(frozen=True)
class EventView:
    at: datetime
    field: str
    from_value: str | None
    to_value: str
    cause: str
    actor: str
    request_id: str


@dataclass(frozen=True)
class NotificationView:
    notification_id: str
    event_type: str
    status: str
    outcome: str
    attempts: int
    received_at: datetime
    processed_at: datetime | None
    out_trade_no: str = ""
    out_refund_no: str = ""
    account: str = ""  # the account whose URL (and keys) it arrived on (issue 18)


@dataclass(frozen=True)
class FulfilmentView:
    order_id: str
    kind: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class GrantView:
    kind: str
    state: str
    days: int
    article_id: str | None
    created_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class OrderStory:
    order: Order
    events: list[EventView]
    refunds: list[Refund]
    notifications: list[NotificationView]
    fulfilment: FulfilmentView | None
    grants: list[GrantView]
    provider_calls_recorded: bool = False  # no table holds provider calls yet; the log lines do
    recon: list[dict[str, Any]] = field(default_factory=list)  # its open reconciliation exceptions


@dataclass(frozen=True)
class Attention:
    held: list[Order]
    failed: list[Order]
    refunds: list[Refund]
    notifications: list[NotificationView]
    recon: list[dict[str, Any]] = field(default_factory=list)  # open reconciliation exceptions
    counts: dict[str, int] = field(default_factory=dict)


def encode_token(created_at: datetime, seq: int) -> str:
    raw = json.dumps([created_at.isoformat(), seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        when, seq = json.loads(raw)
        at = datetime.fromisoformat(when)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidArgumentError([FieldViolation("page_token", "not a token this server issued")]) from exc
    if not valid_position(at, seq):
        raise InvalidArgumentError([FieldViolation("page_token", "not a token this server issued")])
    return at, seq
