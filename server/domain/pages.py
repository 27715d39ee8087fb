"""Paging limits every listing shares: a page size is clamped from both sides (a negative one read
every row on SQLite and was an error on PostgreSQL), and a position read back from a page token must be
a value the database can hold (a forged 1e308 or 10**30 came back as INTERNAL)."""

from __future__ import annotations

from datetime import datetime

MAX_SEQ = 2**63 - 1  # a BIGINT id


def clamp_page_size(requested: int, *, default: int, maximum: int) -> int:
    """0 (the proto default) is `default`; anything else is kept within 1..`maximum`."""
    return default if requested == 0 else max(1, min(requested, maximum))


def valid_position(at: object, seq: object) -> bool:
    """A page token's (created_at, id): an aware time in a year the database holds and a real id."""
    return (
        isinstance(at, datetime)
        and at.tzinfo is not None
        and 1970 <= at.year <= 9998
        and type(seq) is int
        and 0 <= seq <= MAX_SEQ
    )
