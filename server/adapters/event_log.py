"""The event log and its subscribers, in the database.

Positions. Each appending transaction bumps the one `event_log_head` row (UPDATE ... RETURNING) and
inserts its entries under the positions it got. The row lock is held until commit, so a second
appender waits for the first to commit or roll back before it gets the next number: positions are
handed out in commit order and a rolled-back transaction gives its numbers back. A reader that sees
position N committed therefore sees every position below N too, and reading `(after, head]` can never
skip an entry that commits later with a lower number. A PostgreSQL sequence (BIGSERIAL) would not
hold this: concurrent transactions take numbers in one order and commit in another, so a subscriber
could read 7, move on, and never see 6 commit a moment later. The cost is that appenders queue on
the row from their append to their commit; the unit of work appends as its last step (see
server.service.feed) so that window is one INSERT and the COMMIT, and appends take no other lock
after it (no deadlock). On SQLite the single writer gives the same order for free; the row is the
same code.

On PostgreSQL the append also `NOTIFY`s `orderpay_feed` inside the transaction: PostgreSQL delivers
it on commit only, to every process's listener (server/serving/signals.py), which wakes its Watch
streams.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import peewee as pw

from server.adapters import feed_read  # the Watch streams' reads, composed once
from server.adapters.feed_append import FEED_CHANNEL, statements
from server.adapters.feed_payload import encode_entry
from server.adapters.tables import EventLogRow, EventSubscriberRow
from server.adapters.times import from_db_time, to_db_time
from server.domain.feed import FeedFilter
from server.service.feed_ports import FeedEntry, StoredEvent, Subscriber

__all__ = ["FEED_CHANNEL", "PeeweeEventLog", "PeeweeSubscribers"]

Encode = Callable[[FeedEntry, int], bytes]


class PeeweeEventLog:
    def __init__(self, encode: Encode = encode_entry) -> None:
        self._encode = encode

    def append(self, entries: Sequence[FeedEntry]) -> int:
        """Append in order; returns the last position given (0 for nothing). Statements composed once
        per dialect (server/adapters/feed_append.py)."""
        if not entries:
            return 0
        db: Any = EventLogRow._meta.database.obj  # the database the proxy is bound to
        sql = statements(db)
        count = len(entries)
        last = int(db.execute_sql(sql.bump, (count, 1)).fetchone()[0])
        first = last - count + 1
        values: list[Any] = []
        for i, entry in enumerate(entries):
            values += (
                first + i,
                entry.type.value,
                entry.account,
                entry.order_id,
                to_db_time(entry.occurred_at),
                self._encode(entry, first + i),
            )
        db.execute_sql(sql.insert(count), [*values, *sql.notify_params(last)])  # NOTIFY: sent on commit
        return last

    def head(self) -> int:
        return feed_read.head()

    def read_after(self, after: int, upto: int, chosen: FeedFilter, limit: int) -> list[StoredEvent]:
        """Entries in (after, upto] that pass the filter, oldest first, at most `limit`."""
        return feed_read.read_after(after, upto, chosen, limit)

    def count_purgeable(self, cutoff: datetime, keep_after: int) -> int:
        old = (EventLogRow.occurred_at < to_db_time(cutoff)) & (EventLogRow.position <= keep_after)
        return int(EventLogRow.select().where(old).count())

    def purge(self, cutoff: datetime, keep_after: int, limit: int) -> int:
        """Delete up to `limit` entries older than `cutoff` at or below `keep_after`."""
        doomed = (
            EventLogRow.select(EventLogRow.position)
            .where((EventLogRow.occurred_at < to_db_time(cutoff)) & (EventLogRow.position <= keep_after))
            .order_by(EventLogRow.position)
            .limit(limit)
        )
        positions = [row.position for row in doomed]
        if not positions:
            return 0
        doomed_rows = EventLogRow.delete()  # type: ignore[misc]  # types-peewee: a generic classmethod
        return int(doomed_rows.where(EventLogRow.position.in_(positions)).execute())


class PeeweeSubscribers:
    def register(self, name: str, now: datetime) -> Subscriber:
        """Insert first; an existing subscriber is left as it is (registering is idempotent)."""
        EventSubscriberRow.insert(name=name, registered_at=to_db_time(now)).on_conflict_ignore().execute()
        found = self.get(name)
        assert found is not None  # noqa: S101 - just inserted or already there
        return found

    def get(self, name: str) -> Subscriber | None:
        row = EventSubscriberRow.get_or_none(EventSubscriberRow.name == name)
        return None if row is None else _subscriber(row)

    def ack(self, name: str, position: int, now: datetime) -> Subscriber | None:
        """Move the acknowledgement forward (never back); None for an unknown subscriber."""
        EventSubscriberRow.update(
            acked_position=pw.Case(
                None,
                [(EventSubscriberRow.acked_position < position, position)],
                EventSubscriberRow.acked_position,
            ),
            acked_at=to_db_time(now),
            last_seen_at=to_db_time(now),
        ).where(EventSubscriberRow.name == name).execute()
        return self.get(name)

    def seen(self, name: str, now: datetime) -> None:
        EventSubscriberRow.update(last_seen_at=to_db_time(now)).where(
            EventSubscriberRow.name == name
        ).execute()

    def all(self) -> list[Subscriber]:
        return [_subscriber(row) for row in EventSubscriberRow.select().order_by(EventSubscriberRow.name)]

    def lowest_ack(self) -> int | None:
        """The position below which every registered subscriber is done; None without subscribers."""
        value = EventSubscriberRow.select(pw.fn.MIN(EventSubscriberRow.acked_position)).scalar()
        return None if value is None else int(value)


def _subscriber(row: EventSubscriberRow) -> Subscriber:
    return Subscriber(
        name=row.name,
        acked_position=int(row.acked_position),
        registered_at=from_db_time(row.registered_at),
        acked_at=from_db_time(row.acked_at),
        last_seen_at=from_db_time(row.last_seen_at),
    )
