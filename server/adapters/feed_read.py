"""The Watch streams' reads of the event log, composed once per dialect and filter shape
(server/adapters/compiled.py). A stream reads after every wake, so on a busy feed these run hundreds
of times a second; composed per call they made an attached subscriber cost B1 far more than its
messages do."""

from __future__ import annotations

from collections.abc import Callable

import peewee as pw

from server.adapters.compiled import CompiledQuery
from server.adapters.tables import EventLogHeadRow, EventLogRow
from server.domain.feed import FeedFilter
from server.service.feed_ports import StoredEvent

Mark = Callable[[str], pw.Value]
_E = EventLogRow

_HEAD = CompiledQuery(
    EventLogHeadRow,
    lambda mark, _: EventLogHeadRow.select(EventLogHeadRow.position).where(EventLogHeadRow.id == mark("id")),
)


def _after(mark: Mark, variant: tuple[str, ...]) -> pw.Query:
    """Variant: "account" when filtered by account, then one "type<i>" per type in the filter."""
    condition = (_E.position > mark("after")) & (_E.position <= mark("upto"))
    types = [name for name in variant if name.startswith("type")]
    if types:
        condition &= _E.type.in_([mark(name) for name in types])
    if "account" in variant:
        condition &= _E.account == mark("account")
    query = _E.select(_E.position, _E.type, _E.account, _E.payload).where(condition)
    return query.order_by(_E.position).limit(mark("limit"))


_AFTER = CompiledQuery(_E, _after)


def head() -> int:
    row = _HEAD.execute({"id": 1}).fetchone()
    return int(row[0] or 0) if row is not None else 0


def read_after(after: int, upto: int, chosen: FeedFilter, limit: int) -> list[StoredEvent]:
    """Entries in (after, upto] that pass the filter, oldest first, at most `limit`."""
    values: dict[str, object] = {"after": after, "upto": upto, "limit": limit}
    variant: list[str] = []
    if chosen.account:
        variant.append("account")
        values["account"] = chosen.account
    for i, name in enumerate(sorted(t.value for t in chosen.types)):
        variant.append(f"type{i}")
        values[f"type{i}"] = name
    rows = _AFTER.execute(values, tuple(variant))
    return [StoredEvent(int(p), t, a, bytes(payload)) for p, t, a, payload in rows]
