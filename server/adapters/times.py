"""Timestamps in the database: naive UTC in, aware UTC out (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from datetime import UTC, datetime


def to_db_time(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def from_db_time(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands back text for computed columns
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def required_time(value: datetime | str | None) -> datetime:
    parsed = from_db_time(value)
    if parsed is None:
        raise ValueError("missing timestamp")
    return parsed
