"""Reconciliation (issue 12): runs per Beijing day, stored bill files and lines, exceptions.

Numbered 0003 on purpose: the runner applies files in name order and tolerates gaps.
"""

from peewee import *


def up(migrator, db):
    class ReconRunRow(Model):
        bill_date = CharField(unique=True, max_length=10)
        status = CharField(max_length=16)
        trade_sha1 = CharField(null=True, max_length=40)
        fund_sha1 = CharField(null=True, max_length=40)
        bill_rows = IntegerField(default=0)
        matched = IntegerField(default=0)
        deferred = IntegerField(default=0)
        payments_fen = BigIntegerField(default=0)
        refunds_fen = BigIntegerField(default=0)
        fees_fen = BigIntegerField(default=0)
        fund_income_fen = BigIntegerField(null=True)
        fund_expense_fen = BigIntegerField(null=True)
        error = TextField(default="")
        claim_token = CharField(max_length=32)
        version = BigIntegerField(default=1)
        claimed_at = DateTimeField()
        finished_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "recon_runs"

    class ReconFileRow(Model):
        bill_date = CharField(max_length=10)
        kind = CharField(max_length=8)
        sha1 = CharField(max_length=40)
        size = BigIntegerField()
        content = BlobField()
        stored_at = DateTimeField()

        class Meta:
            database = db
            table_name = "recon_files"
            indexes = ((("bill_date", "kind"), True),)

    class ReconLineRow(Model):
        bill_date = CharField(index=True, max_length=10)
        kind = CharField(max_length=8)
        row_time = DateTimeField()
        out_trade_no = CharField(index=True, max_length=32)
        transaction_id = CharField(max_length=32)
        out_refund_no = CharField(max_length=64, default="")
        refund_id = CharField(max_length=64, default="")
        amount_fen = BigIntegerField()
        fee_fen = BigIntegerField()
        status = CharField(max_length=16)

        class Meta:
            database = db
            table_name = "recon_lines"

    class ReconExceptionRow(Model):
        bill_date = CharField(max_length=10)
        kind = CharField(max_length=32)
        out_trade_no = CharField(max_length=32, default="")
        out_refund_no = CharField(max_length=64, default="")
        local_fen = BigIntegerField(default=0)
        remote_fen = BigIntegerField(default=0)
        status = CharField(index=True, max_length=16)
        detail = TextField(default="")
        resolution = TextField(default="")
        resolved_by = CharField(max_length=64, default="")
        version = BigIntegerField(default=1)
        created_at = DateTimeField()
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = "recon_exceptions"
            indexes = ((("bill_date", "kind", "out_trade_no", "out_refund_no"), True),)

    db.create_tables([ReconRunRow, ReconFileRow, ReconLineRow, ReconExceptionRow])


def down(migrator, db):
    for table in ("recon_exceptions", "recon_lines", "recon_files", "recon_runs"):
        migrator.migrate(migrator.drop_table(table))
