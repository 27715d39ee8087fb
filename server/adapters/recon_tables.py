"""Reconciliation tables (migration 0003): runs per Beijing day, raw bill files, parsed lines, exceptions;
all per merchant account since migration 0010 (issue 18).

Kept next to the reconciliation store rather than in tables.py, so the feature's schema is in one place.
"""

from __future__ import annotations

import peewee as pw

from server.adapters.tables import BaseModel


def _account() -> pw.CharField:
    return pw.CharField(max_length=64, default="default")  # migration 0010


class ReconRunRow(BaseModel):
    bill_date = pw.CharField(max_length=10)
    account = _account()
    status = pw.CharField(max_length=16)  # RUNNING | DONE | EMPTY
    trade_sha1 = pw.CharField(max_length=40, null=True)
    fund_sha1 = pw.CharField(max_length=40, null=True)
    bill_rows = pw.IntegerField(default=0)
    matched = pw.IntegerField(default=0)
    deferred = pw.IntegerField(default=0)
    payments_fen = pw.BigIntegerField(default=0)
    refunds_fen = pw.BigIntegerField(default=0)
    fees_fen = pw.BigIntegerField(default=0)
    fund_income_fen = pw.BigIntegerField(null=True)
    fund_expense_fen = pw.BigIntegerField(null=True)
    error = pw.TextField(default="")
    claim_token = pw.CharField(max_length=32)
    version = pw.BigIntegerField(default=1)
    claimed_at = pw.DateTimeField()
    finished_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "recon_runs"
        indexes = ((("bill_date", "account"), True),)


class ReconFileRow(BaseModel):
    bill_date = pw.CharField(max_length=10)
    account = _account()
    kind = pw.CharField(max_length=8)  # TRADE | FUND
    sha1 = pw.CharField(max_length=40)
    size = pw.BigIntegerField()
    content = pw.BlobField()  # gzip of the file exactly as WeChat generated it
    stored_at = pw.DateTimeField()

    class Meta:
        table_name = "recon_files"
        indexes = ((("bill_date", "account", "kind"), True),)


class ReconLineRow(BaseModel):
    id = pw.AutoField()
    bill_date = pw.CharField(max_length=10)
    account = _account()
    kind = pw.CharField(max_length=8)
    row_time = pw.DateTimeField()
    out_trade_no = pw.CharField(max_length=32, index=True)
    transaction_id = pw.CharField(max_length=32)
    out_refund_no = pw.CharField(max_length=64, default="")
    refund_id = pw.CharField(max_length=64, default="")
    amount_fen = pw.BigIntegerField()
    fee_fen = pw.BigIntegerField()
    status = pw.CharField(max_length=16)

    class Meta:
        table_name = "recon_lines"
        indexes = ((("bill_date", "account"), False),)


class ReconExceptionRow(BaseModel):
    id = pw.AutoField()
    bill_date = pw.CharField(max_length=10)
    account = _account()
    kind = pw.CharField(max_length=32)
    out_trade_no = pw.CharField(max_length=32, default="")
    out_refund_no = pw.CharField(max_length=64, default="")
    local_fen = pw.BigIntegerField(default=0)
    remote_fen = pw.BigIntegerField(default=0)
    status = pw.CharField(max_length=16, index=True)
    detail = pw.TextField(default="")
    resolution = pw.TextField(default="")
    resolved_by = pw.CharField(max_length=64, default="")
    version = pw.BigIntegerField(default=1)
    created_at = pw.DateTimeField()
    updated_at = pw.DateTimeField()

    class Meta:
        table_name = "recon_exceptions"
        indexes = ((("bill_date", "account", "kind", "out_trade_no", "out_refund_no"), True),)
