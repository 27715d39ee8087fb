"""Several merchant accounts (issue 18): every order names the account that takes it.

Additive: one column with a default, so existing orders (and any process still running the code from
before) read and write `default`, the account of the one-bundle layout.
"""

from peewee import CharField


def up(migrator, db):
    migrator.migrate(migrator.add_column("orders", "account", CharField(max_length=64, default="default")))
