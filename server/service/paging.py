"""ListOrders page tokens: an opaque, unsigned keyset cursor bound to the query that issued it."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from server.domain.errors import FieldViolation, InvalidArgumentError
from server.domain.order import OrderStatus
from server.service.shapes import Cursor


def encode_page_token(
    cursor: Cursor, user_id: str, status: OrderStatus | None, account: str | None = None
) -> str:
    payload = {"t": cursor.created_at.isoformat(), "s": cursor.seq, "u": user_id, "f": status or ""}
    if account:  # issue 18; a token without it is a query of every account
        payload["a"] = account
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_page_token(
    token: str, user_id: str, status: OrderStatus | None, account: str | None = None
) -> Cursor:
    bad = InvalidArgumentError([FieldViolation("page_token", "is not a token this server issued")])
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        cursor = Cursor(datetime.fromisoformat(raw["t"]), int(raw["s"]))
        same_query = (
            raw["u"] == user_id and raw["f"] == (status or "") and raw.get("a", "") == (account or "")
        )
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise bad from exc
    # Forged values out of range would reach the database and come back as INTERNAL (an overflow).
    in_range = 0 <= cursor.seq < 2**63 and 1970 <= cursor.created_at.year <= 9998
    if not same_query or cursor.created_at.tzinfo is None or not in_range:
        raise bad
    return cursor
