"""CreateOrder writes its feed entry in its own statement on PostgreSQL (issue 23): the entry's position
is handed out inside that statement, so the stored message (orderpay.v1.FeedEvent) gets its position
field there too. `orderpay_feed_event(position, rest)` puts field 1 (`position`, a varint) in front of
the rest of the message serialized without it: byte for byte what the code serializes with the
position set (fields in number order), so every reader, older ones included, reads the same bytes.

SQLite needs nothing: its append learns the position before it serializes.
"""

import peewee as pw

FUNCTION = r"""
CREATE OR REPLACE FUNCTION orderpay_feed_event(pos bigint, rest bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    head bytea := '\x08';
    v bigint := pos;
BEGIN
    WHILE v >= 128 LOOP
        head := head || set_byte('\x00'::bytea, 0, ((v & 127) | 128)::int);
        v := v >> 7;
    END LOOP;
    RETURN head || set_byte('\x00'::bytea, 0, v::int) || rest;
END $$
"""


def up(migrator, db):
    if isinstance(db, pw.PostgresqlDatabase):
        db.execute_sql(FUNCTION)


def down(migrator, db):
    if isinstance(db, pw.PostgresqlDatabase):
        db.execute_sql("DROP FUNCTION IF EXISTS orderpay_feed_event(bigint, bytea)")
