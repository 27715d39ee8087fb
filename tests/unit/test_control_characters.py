"""The 2026-12 audit's L6: control and format characters (ESC, DEL, C1, U+202E, ...) are refused in
every free-text input, bill ids are validated, and every CLI renderer escapes what is not printable."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from clients.ops_commands import _cell
from clients.views import order_fields
from orderpay.v1 import order_pb2
from server.domain.errors import InvalidArgumentError
from server.domain.operations import require_reason
from server.domain.reconciliation import ExceptionKind, ExceptionStatus
from server.domain.validation import Violations
from server.recon_commands import render, report_json
from server.service.recon_ports import DayReport, DayTotals, ReconException, RunSummary
from server.wxpay.bills import MalformedBillError, parse_trade_bill
from tests.support.bill_gateway import trade_bill, trade_row

DAY = date(2026, 3, 9)
WHEN = datetime(2026, 3, 10, 2, tzinfo=UTC)


def recon_exception(kind: ExceptionKind, status: ExceptionStatus, number: int) -> ReconException:
    return ReconException(number, DAY, kind, f"OP{number}", "", 1800, 1805, status, "", "", "", 1, WHEN, WHEN)


def report(*exceptions: ReconException) -> DayReport:
    summary = RunSummary("DONE", "ab" * 20, None, 4, 3, 0, DayTotals(5405, 600, 29, 5405, 629), WHEN)
    return DayReport(DAY, summary, list(exceptions))


HOSTILE = ["ok\x1b[2J", "A\x7fB", "C\x9b2J", "D\u202eE", "F\u200bG", "H\u2028I", "J\x00K", "L\u2066M"]


@pytest.mark.parametrize("text", HOSTILE)
def test_free_text_refuses_control_and_format_characters(text: str) -> None:
    violations = Violations()
    violations.text("description", text, 127)
    assert [v.field for v in violations.items] == ["description"]
    with pytest.raises(InvalidArgumentError):
        require_reason(text)


def test_ordinary_text_passes() -> None:
    violations = Violations()
    violations.text("description", "VIP 月卡 · 30 days, “quoted” — ok", 127)
    assert violations.items == []


@pytest.mark.parametrize("out_trade_no", ["OP\x1b[2J\x1b[31mFAKE", "OP 123456", "OP<script>", "OP"])
def test_a_bill_row_with_an_id_wechat_never_writes_is_malformed(out_trade_no: str) -> None:
    with pytest.raises(MalformedBillError) as bad:
        parse_trade_bill(trade_bill(trade_row(date(2026, 12, 3), out_trade_no, "18.00")))
    assert bad.value.line == 2
    assert bad.value.column == "商户订单号"


def test_the_recon_report_escapes_what_is_not_printable() -> None:
    opened = recon_exception(ExceptionKind.AMOUNT_MISMATCH, ExceptionStatus.OPEN, 1)
    hostile = dataclasses.replace(opened, out_trade_no="OP\x1b[2J\x9bX\u202eY", detail="d\x1b]0;t\x07")
    text = render(report_json(report(hostile)))
    assert not any(ch in text for ch in "\x1b\x9b\u202e\x07")
    assert "\\x1b" in text


def test_ops_cells_and_order_fields_escape_what_is_not_printable() -> None:
    assert "\x1b" not in _cell("x\x1b[2Jy")
    order = order_pb2.Order(order_id="o1", description="A\x7fB\x9b2JC\u202eD", attach="\x1b[31m")
    rendered = "".join(value for _, value in order_fields(order))
    assert not any(ch in rendered for ch in "\x7f\x9b\u202e\x1b")
    assert "\\u202e" in rendered
