"""Inputs an attacker or a typo can forge, refused with a named field instead of reaching the database
(or WeChat Pay) and coming back as INTERNAL."""

from __future__ import annotations

import base64
import json

import pytest

from server.domain.catalogue import MAX_ORDER_FEN, product_from_mapping
from server.domain.errors import InvalidArgumentError
from server.service.paging import decode_page_token


def _token(**payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "payload",
    [
        {"t": "2026-01-01T00:00:00+00:00", "s": 10**30, "u": "u1", "f": ""},  # integer overflow
        {"t": "2026-01-01T00:00:00+00:00", "s": -1, "u": "u1", "f": ""},
        {"t": "9999-12-31T23:59:59+00:00", "s": 1, "u": "u1", "f": ""},  # the datetime edge
        {"t": "0001-01-01T00:00:00+00:00", "s": 1, "u": "u1", "f": ""},
    ],
)
def test_a_forged_page_token_is_invalid_argument(payload: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        decode_page_token(_token(**payload), "u1", None)
    assert refused.value.violations[0].field == "page_token"


def test_a_genuine_cursor_still_decodes() -> None:
    cursor = decode_page_token(_token(t="2026-01-01T00:00:00+00:00", s=42, u="u1", f=""), "u1", None)
    assert cursor.seq == 42


def test_a_price_whose_largest_order_overflows_wechats_int32_is_refused() -> None:
    too_dear = {"product_id": "gold", "kind": "GOODS", "title": "Gold", "price_fen": MAX_ORDER_FEN // 999 + 1}
    with pytest.raises(InvalidArgumentError) as refused:
        product_from_mapping(too_dear)
    assert "price_fen" in refused.value.violations[0].description
    assert product_from_mapping({**too_dear, "price_fen": MAX_ORDER_FEN // 999}).price_fen > 0
