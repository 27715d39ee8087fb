"""Reconciliation per merchant account (issue 18 §5): each account's bills are reconciled on their own.

Additive: an `account` column with a default on the four reconciliation tables, so existing rows read
`default` (the account of the one-bundle layout) and an INSERT from a process still running the code
from before (a rolling upgrade) names no account and gets it. The unique keys gain the account: a day
is claimed, stored and reported once per account. Dropping and re-adding a unique index is a short
lock on tables of one row per day (runs, files) or per difference (exceptions); no other step.
"""

from peewee import SQL, CharField

# Index names as peewee gave them in migration 0003.
_REPLACED = (
    ("recon_runs", "reconrunrow_bill_date", ("bill_date", "account")),
    ("recon_files", "reconfilerow_bill_date_kind", ("bill_date", "account", "kind")),
    (
        "recon_exceptions",
        "reconexceptionrow_bill_date_kind_out_trade_no_out_refund_no",
        ("bill_date", "account", "kind", "out_trade_no", "out_refund_no"),
    ),
)


def _account():
    return CharField(max_length=64, default="default", constraints=[SQL("DEFAULT 'default'")])


def up(migrator, db):
    tables = ("recon_runs", "recon_files", "recon_lines", "recon_exceptions")
    migrator.migrate(*(migrator.add_column(table, "account", _account()) for table in tables))
    for table, old, columns in _REPLACED:
        migrator.migrate(migrator.drop_index(table, old), migrator.add_index(table, columns, unique=True))
    migrator.migrate(
        migrator.drop_index("recon_lines", "reconlinerow_bill_date"),
        migrator.add_index("recon_lines", ("bill_date", "account"), unique=False),
    )
