"""The matching rules and the bill parser, on hand-made rows (no sockets, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from server.domain.recon_records import BillRow, FundFlow, LocalPayment, LocalRefund, RowKind
from server.domain.reconciliation import BEIJING, ExceptionKind, Window, check_fund_flow, reconcile
from server.wxpay.bills import MalformedBillError, parse_fund_flow_bill, parse_trade_bill, yuan_to_fen

DAY = date(2026, 3, 9)
NOON = datetime(2026, 3, 9, 12, tzinfo=BEIJING)
WINDOW = Window.of(DAY)


def pay_row(no: str, fen: int, txn: str = "", at: datetime = NOON) -> BillRow:
    return BillRow(RowKind.PAYMENT, at, no, txn or "T" + no, fen, 0, "SUCCESS")


def refund_row(no: str, rno: str, fen: int, status: str = "SUCCESS", rid: str = "") -> BillRow:
    return BillRow(RowKind.REFUND, NOON, no, "T" + no, fen, 0, status, rno, rid or "RID" + rno)


def paid(no: str, fen: int, at: datetime = NOON, txn: str | None = "") -> LocalPayment:
    return LocalPayment("ord_" + no, no, ("T" + no) if txn == "" else txn, fen if txn is not None else 0, at)


def refund(no: str, rno: str, fen: int, status: str = "SUCCESS", at: datetime = NOON) -> LocalRefund:
    return LocalRefund(rno, "RID" + rno, no, fen, status, at)


def kinds(rows: list[BillRow], payments: list[LocalPayment], refunds: list[LocalRefund]) -> list[str]:
    return sorted(d.kind.value for d in reconcile(rows, payments, refunds, WINDOW).differences)


def test_everything_matching_is_matched() -> None:
    outcome = reconcile(
        [pay_row("A", 100), refund_row("A", "RA", 40)], [paid("A", 100)], [refund("A", "RA", 40)], WINDOW
    )
    assert (outcome.matched, outcome.differences) == (2, [])


def test_payment_falls_back_to_transaction_id() -> None:
    row = BillRow(RowKind.PAYMENT, NOON, "renamed", "TA", 100, 0, "SUCCESS")
    assert reconcile([row], [paid("A", 100)], [], WINDOW).differences == []


def test_refund_falls_back_to_refund_id() -> None:
    row = refund_row("A", "other", 40, rid="RIDRA")
    assert reconcile([row], [], [refund("A", "RA", 40)], WINDOW).differences == []


@pytest.mark.parametrize(
    ("rows", "payments", "refunds", "expected"),
    [
        ([pay_row("A", 100)], [], [], ["MISSING_LOCAL"]),
        ([pay_row("A", 100)], [paid("A", 100, txn=None)], [], ["MISSING_LOCAL"]),
        ([], [paid("A", 100)], [], ["MISSING_REMOTE"]),
        ([pay_row("A", 107)], [paid("A", 100)], [], ["AMOUNT_MISMATCH"]),
        ([pay_row("A", 100, txn="Tother")], [paid("A", 100)], [], ["STATUS_MISMATCH"]),
        ([pay_row("A", 100), pay_row("A", 100)], [paid("A", 100)], [], ["MISSING_LOCAL"]),
        ([refund_row("A", "RA", 40)], [], [], ["REFUND_MISSING_LOCAL"]),
        ([], [], [refund("A", "RA", 40)], ["REFUND_MISSING_REMOTE"]),
        ([refund_row("A", "RA", 41)], [], [refund("A", "RA", 40)], ["REFUND_AMOUNT_MISMATCH"]),
        ([refund_row("A", "RA", 40, "CLOSED")], [], [refund("A", "RA", 40)], ["STATUS_MISMATCH"]),
        ([refund_row("A", "RA", 40, "PROCESSING")], [], [refund("A", "RA", 40)], []),  # a snapshot
        ([refund_row("A", "RA", 40)], [], [refund("A", "RA", 40, "PROCESSING")], []),
    ],
)
def test_each_difference_has_one_kind(
    rows: list[BillRow], payments: list[LocalPayment], refunds: list[LocalRefund], expected: list[str]
) -> None:
    assert kinds(rows, payments, refunds) == expected


def test_a_refund_the_bill_shows_settled_is_worth_a_query() -> None:
    processing = refund("A", "RA", 40, "PROCESSING")
    outcome = reconcile([refund_row("A", "RA", 40, "SUCCESS")], [], [processing], WINDOW)
    assert (outcome.differences, outcome.settled_remotely) == ([], ["RA"])
    still = reconcile([refund_row("A", "RA", 40, "PROCESSING")], [], [processing], WINDOW)
    assert still.settled_remotely == []


def test_only_a_missing_local_with_an_order_is_repairable() -> None:
    no_order = reconcile([pay_row("A", 100)], [], [], WINDOW).differences
    unpaid = reconcile([pay_row("A", 100)], [paid("A", 100, txn=None)], [], WINDOW).differences
    assert [d.repairable for d in no_order + unpaid] == [False, True]


def test_critical_kinds() -> None:
    assert {k for k in ExceptionKind if k.critical} == {
        ExceptionKind.MISSING_REMOTE,
        ExceptionKind.REFUND_MISSING_REMOTE,
    }


def test_the_day_cut() -> None:
    last_moment = WINDOW.end - timedelta(seconds=1)
    before_day = WINDOW.day_start - timedelta(seconds=1)
    late_refund = refund("A", "RL", 10, at=last_moment)
    early_refund = refund("A", "RE", 10, at=before_day)
    old_refund = refund("A", "RO", 10, at=WINDOW.day_start - timedelta(hours=1))
    # A refund of the day's last seconds that the bill lacks waits for the next day's bill.
    outcome = reconcile([], [], [late_refund, old_refund], WINDOW)
    assert (outcome.differences, outcome.deferred) == ([], ["RL"])
    # One from the previous day's last seconds belongs here unless the previous bill had it.
    assert kinds([], [], [early_refund]) == ["REFUND_MISSING_REMOTE"]
    assert reconcile([], [], [early_refund], WINDOW, earlier_bill={"RE"}).differences == []
    # A row the cut put in this bill matches its local record of the day before.
    assert reconcile([refund_row("A", "RE", 10)], [], [early_refund], WINDOW, {"RE"}).differences == []
    # Beijing, not UTC: 07:30 +08:00 is 23:30 UTC of the day before, and still this day.
    morning = datetime(2026, 3, 8, 23, 30, tzinfo=UTC)
    assert kinds([], [paid("M", 100, at=morning)], []) == ["MISSING_REMOTE"]


def test_fund_flow_check() -> None:
    rows = [
        BillRow(RowKind.PAYMENT, NOON, "A", "TA", 10_000, 60, "SUCCESS"),
        BillRow(RowKind.REFUND, NOON, "A", "TA", 5_000, -30, "SUCCESS", "RA", "RIDRA"),
        BillRow(RowKind.REFUND, NOON, "A", "TA", 1_000, -6, "CLOSED", "RB", "RIDRB"),  # never left
    ]
    outcome = reconcile(rows, [], [], WINDOW)
    assert check_fund_flow(outcome, FundFlow(income_fen=10_000, expense_fen=60 + 5_000 - 30, rows=3)) is None
    drift = check_fund_flow(outcome, FundFlow(income_fen=10_001, expense_fen=5_030, rows=3))
    assert drift is not None
    assert drift.kind is ExceptionKind.FUND_FLOW_MISMATCH
    assert check_fund_flow(reconcile([], [], [], WINDOW), None) is None


def test_yuan_to_fen_is_exact() -> None:
    assert [yuan_to_fen(v) for v in ("0.01", "12.34", "100000.00", "7", "0.5")] == [
        1,
        1234,
        10_000_000,
        700,
        50,
    ]
    assert [yuan_to_fen(v, places=5, signed=True) for v in ("0.07000", "-0.01000", "0.00000")] == [7, -1, 0]
    with pytest.raises(MalformedBillError):
        yuan_to_fen("1,00")


@pytest.mark.parametrize(
    "text",
    ["", " ", "NaN", "nan", "Infinity", "-Infinity", "1e30", "1E2", "1e999999", "abc", "1e18", "-18.00",
     "18.001", "+18.00", "18.", ".5", "１８.00", "1_000.00", "1234567890123.00", "0x10"],
)  # fmt: skip
def test_amounts_wechat_never_writes_are_malformed_not_zero_or_a_guess(text: str) -> None:
    with pytest.raises(MalformedBillError):
        yuan_to_fen(text)


def test_fees_allow_five_decimals_and_a_sign_and_no_more() -> None:
    for text in ("0.000001", "NaN", "", "-1e2"):
        with pytest.raises(MalformedBillError):
            yuan_to_fen(text, places=5, signed=True)


HEADER = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"  # noqa: E501 - a bill line as WeChat writes it
PAYMENT = "`2024-01-16 22:43:59,`wx9dfe,`1627859777,`0,`,`4200002086202401160745964084,`1747268229775183872,`o2RW,`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.02,`0.00,`0,`0,`0.00,`0.00,`,`,`测试支付4, 含逗号,`,`0.00000,`0.90%,`0.02,`0.00,`"  # noqa: E501 - a bill line as WeChat writes it
REFUND = "`2024-01-16 22:45:16,`wx9dfe,`1627859777,`0,`,`4200002086202401160745964084,`1747268229775183872,`o2RW,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50303108562024011601487282563,`R1747268742516264960,`0.01,`0.00,`ORIGINAL,`SUCCESS,`测试支付4,`,`0.00000,`0.90%,`0.00,`0.01,`"  # noqa: E501 - a bill line as WeChat writes it
SUMMARY = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`2,`0.02,`0.01,`0.00,`0.00000,`0.02,`0.01"  # noqa: E501 - a bill line as WeChat writes it


@pytest.mark.parametrize(("bom", "newline"), [("", "\n"), ("\ufeff", "\r\n")])
def test_a_real_bill_parses(bom: str, newline: str) -> None:
    text = bom + newline.join([HEADER, PAYMENT, REFUND, *SUMMARY.split("\n")]) + newline
    payment, refund_line = parse_trade_bill(text.encode())
    assert (payment.kind, payment.out_trade_no, payment.amount_fen, payment.status) == (
        RowKind.PAYMENT, "1747268229775183872", 2, "SUCCESS",
    )  # fmt: skip
    assert payment.at == datetime(2024, 1, 16, 22, 43, 59, tzinfo=BEIJING)
    assert (refund_line.kind, refund_line.out_refund_no, refund_line.amount_fen) == (
        RowKind.REFUND, "R1747268742516264960", 1,
    )  # fmt: skip


def test_columns_are_found_by_name() -> None:
    reversed_header = ",".join(reversed(HEADER.split(",")))
    reversed_row = ",".join("`" + field for field in reversed(PAYMENT[1:].split(",`")))
    (row,) = parse_trade_bill(f"{reversed_header}\n{reversed_row}".encode())
    assert (row.out_trade_no, row.amount_fen, row.status) == ("1747268229775183872", 2, "SUCCESS")


def test_a_bill_without_a_needed_column_is_refused() -> None:
    with pytest.raises(MalformedBillError, match="商户订单号"):
        parse_trade_bill(HEADER.replace("商户订单号", "x").encode())


def test_fund_flow_sums() -> None:
    text = "\n".join(
        [
            "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),资金变更提交申请人,备注,业务凭证号",
            "`2021-02-01 13:53:56,`42000,`1,`交易,`交易,`收入,`100.00,`100.00,`system,`,`A",
            "`2021-02-01 13:54:56,`50300,`2,`退款,`退款,`支出,`0.01,`99.99,`1601959334API,`退款总金额0.01元;含手续费0.00元,`S1",  # noqa: E501 - a bill line as WeChat writes it
            "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额",
            "`2,`1,`100.00,`1,`0.01",
        ]
    )
    assert parse_fund_flow_bill(text.encode()) == FundFlow(income_fen=10_000, expense_fen=1, rows=2)


def test_a_gzip_bomb_is_refused_and_a_real_gzip_bill_inflates() -> None:
    """The audit's L7: 300 KB of gzip inflating to 300 MB cost 588 MB before it was refused; it is now
    refused from its inflation ratio, step by step (the figure is in the closing note, not asserted)."""
    import gzip

    from server.domain.errors import ProviderUnavailableError
    from server.wxpay.bills import MAX_BILL_BYTES, _gunzip

    with pytest.raises(ProviderUnavailableError) as refused:
        _gunzip(gzip.compress(b"\0" * (64 << 20)), MAX_BILL_BYTES)
    assert refused.value.metadata["provider_code"] == "BILL_CORRUPT"
    bill = "\n".join([HEADER, PAYMENT, REFUND, *SUMMARY.split("\n")]).encode()
    assert _gunzip(gzip.compress(bill), MAX_BILL_BYTES) == bill
    with pytest.raises(ProviderUnavailableError):
        _gunzip(gzip.compress(bill)[:-12], MAX_BILL_BYTES)  # truncated


def test_a_bill_that_is_not_utf8_is_malformed_at_its_line() -> None:
    text = "\n".join([HEADER, PAYMENT]).encode() + b"\n`\xff\xfe\n"
    with pytest.raises(MalformedBillError) as bad:
        parse_trade_bill(text)
    assert bad.value.line == 3
