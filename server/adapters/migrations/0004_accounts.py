"""Several merchant accounts (issue 18): every order names the account that takes it.

Additive: one column with a default, so existing orders read `default`, the account of the one-bundle
layout. The default lives in the database too: an INSERT from a process still running the code from
before (a rolling upgrade) names no account and gets it.
"""

from peewee import SQL, CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column(
            "orders",
            "account",
            CharField(max_length=64, default="default", constraints=[SQL("DEFAULT 'default'")]),
        )
    )
