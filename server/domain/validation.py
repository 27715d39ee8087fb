"""Syntax checks at the edge of every use case: each problem becomes a field violation."""

from __future__ import annotations

import re

from server.domain.errors import FieldViolation, InvalidArgumentError
from server.domain.text import has_control

_ID = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces or control characters
OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
OUT_REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
MAX_QUANTITY = 999
MAX_WAIT_MS = 20_000
MAX_PAGE_SIZE = 100


class Violations:
    """Collects every problem of one request, so the caller sees them all at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def identifier(self, field: str, value: str, max_len: int = 64) -> None:
        if not value:
            self.add(field, "must not be empty")
        elif len(value) > max_len:
            self.add(field, f"must be at most {max_len} characters")
        elif not _ID.fullmatch(value):
            self.add(field, "must be printable ASCII without spaces")

    def text(self, field: str, value: str | None, max_len: int) -> None:
        if value is None:
            return
        if len(value) > max_len:
            self.add(field, f"must be at most {max_len} characters")
        elif has_control(value) or any(ord(ch) > 0xFFFF for ch in value):
            # WeChat Pay accepts only 1-3 byte UTF-8 (no emoji); control and format characters reach
            # terminals and pages (server/domain/text.py).
            self.add(field, "must not contain control or format characters, or 4-byte characters")

    def int_range(self, field: str, value: int, low: int, high: int) -> None:
        if not low <= value <= high:
            self.add(field, f"must be between {low} and {high}")

    def pattern(self, field: str, value: str, regex: re.Pattern[str], rule: str) -> None:
        if not regex.fullmatch(value):
            self.add(field, rule)

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgumentError(self.items)
