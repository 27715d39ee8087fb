"""Stored notifications name their merchant account (issue 18 §5): the account whose notify URL they
came to and whose keys verified them. A replay or the re-processing job verifies with the same keys,
and operators filter by it. Additive, with the default in the database too: rows from before, and
inserts from code before (a rolling upgrade), read `default`, which verifies as before.
"""

from peewee import SQL, CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column(
            "notifications",
            "account",
            CharField(max_length=64, default="default", constraints=[SQL("DEFAULT 'default'")]),
        )
    )
