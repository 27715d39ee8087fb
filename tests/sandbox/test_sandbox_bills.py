"""The sandbox clock and the bill endpoints, read with Python's own `csv` module (not orderpay's parser)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from sandbox.app import RunningSandbox
from sandbox.engine.models import CHINA
from sandbox.keys.bundle import Credentials
from sandbox.testing import MerchantCaller, prepay_body

JSAPI = "/v3/pay/transactions/jsapi"
REFUNDS = "/v3/refund/domestic/refunds"


def beijing_today(caller: MerchantCaller) -> date:
    now = datetime.fromisoformat(caller.control("GET", "clock")["now"])
    return now.astimezone(CHINA).date()


def open_day(caller: MerchantCaller, day: date) -> None:
    """Move the sandbox to 10:00:01 on the next day, when day's bills exist."""
    ready = datetime.combine(day + timedelta(days=1), time(10, 0, 1), tzinfo=CHINA)
    caller.control("POST", "clock", {"now": ready.isoformat()})


def paid(caller: MerchantCaller, credentials: Credentials, no: str, total: int = 100) -> None:
    body = prepay_body(
        credentials, no, "http://127.0.0.1:9/notify", amount={"total": total, "currency": "CNY"}
    )
    assert caller.call("POST", JSAPI, body).status == 200
    caller.control("POST", f"orders/{no}/pay")


def refunded(caller: MerchantCaller, no: str, out_refund_no: str, refund: int, total: int = 100) -> None:
    body = {
        "out_trade_no": no,
        "out_refund_no": out_refund_no,
        "amount": {"refund": refund, "total": total, "currency": "CNY"},
    }
    assert caller.call("POST", REFUNDS, body).status == 200


def fetch(caller: MerchantCaller, target: str) -> tuple[dict[str, Any], bytes]:
    """Apply, then download at once; returns the apply answer and the uncompressed file."""
    applied = caller.call("GET", target)
    assert applied.status == 200, applied.body
    assert "wechatpay-signature" in applied.headers
    answer = applied.json()
    url = httpx.URL(answer["download_url"])
    downloaded = caller.call("GET", url.raw_path.decode())
    assert downloaded.status == 200
    assert "wechatpay-signature" not in downloaded.headers  # WeChat signs no download answer
    body = downloaded.body
    if "GZIP" in target:
        assert downloaded.headers["content-type"] == "application/x-gzip"
        body = gzip.decompress(body)
    return answer, body


def read_csv(content: bytes) -> tuple[list[str], list[dict[str, str]], dict[str, str]]:
    """Independent reader: the stdlib csv module, backticks stripped by hand."""
    text = content.decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    header, *rest = lines
    summary_at = next(i for i, line in enumerate(rest) if not line[0].startswith("`"))
    rows = [dict(zip(header, (v.removeprefix("`") for v in line), strict=True)) for line in rest[:summary_at]]
    summary_header, summary = rest[summary_at], rest[summary_at + 1]
    assert all(v.startswith("`") for line in rest[:summary_at] for v in line)
    return header, rows, dict(zip(summary_header, (v.removeprefix("`") for v in summary), strict=True))


def test_clock_moves_forward_only(caller: MerchantCaller) -> None:
    before = datetime.fromisoformat(caller.control("GET", "clock")["now"])
    moved = datetime.fromisoformat(caller.control("POST", "clock", {"advance_s": 26 * 3600})["now"])
    assert moved - before >= timedelta(hours=26)
    back = httpx.post(f"{caller.base_url}/sandbox/v1/clock", json={"now": before.isoformat()})
    assert back.status_code == 400
    assert back.json()["code"] == "BAD_CONFIG"
    assert httpx.post(f"{caller.base_url}/sandbox/v1/clock", json={"advance_s": -1}).status_code == 400


def test_expiry_and_signatures_follow_the_clock(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    assert (
        caller.call("POST", JSAPI, prepay_body(credentials, out_trade_no, "http://127.0.0.1:9/n")).status
        == 200
    )
    caller.control("POST", "clock", {"advance_s": 8 * 86400})  # past the default 7-day pay window
    answer = caller.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={credentials.mchid}")
    assert answer.status == 200  # our wall-clock signature still passes the 5-minute window
    assert answer.json()["trade_state"] == "CLOSED"


def test_bill_availability(caller: MerchantCaller, credentials: Credentials, out_trade_no: str) -> None:
    paid(caller, credentials, out_trade_no)
    day = beijing_today(caller)
    creating = caller.call("GET", f"/v3/bill/tradebill?bill_date={day}")
    assert (creating.status, creating.json()["code"]) == (400, "STATEMENT_CREATING")
    future = caller.call("GET", f"/v3/bill/tradebill?bill_date={day + timedelta(days=1)}")
    assert (future.status, future.json()["code"]) == (400, "INVALID_REQUEST")
    open_day(caller, day)
    empty = caller.call("GET", f"/v3/bill/tradebill?bill_date={day - timedelta(days=1)}")
    assert (empty.status, empty.json()["code"]) == (400, "NO_STATEMENT_EXIST")
    assert caller.call("GET", f"/v3/bill/tradebill?bill_date={day}").status == 200


def test_trade_bill_all_in_wechat_format(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    paid(caller, credentials, out_trade_no, total=1234)
    refunded(caller, out_trade_no, "R1" + out_trade_no, 234, total=1234)
    day = beijing_today(caller)
    open_day(caller, day)
    answer, content = fetch(caller, f"/v3/bill/tradebill?bill_date={day}&bill_type=ALL&tar_type=GZIP")
    assert answer["hash_type"] == "SHA1"
    assert answer["hash_value"] == hashlib.sha1(content).hexdigest()  # noqa: S324 - of the gunzipped bytes
    header, rows, summary = read_csv(content)
    assert len(header) == 27
    assert header[24] == "订单金额"
    payment, refund = rows
    assert (payment["交易状态"], payment["商户订单号"], payment["订单金额"]) == (
        "SUCCESS",
        out_trade_no,
        "12.34",
    )
    assert (payment["商户退款单号"], payment["退款金额"], payment["特约商户号"]) == ("0", "0.00", "0")
    assert payment["手续费"] == "0.07000"  # 0.6 % of 12.34 yuan, 5 decimals
    assert (refund["交易状态"], refund["商户退款单号"], refund["退款金额"]) == (
        "REFUND",
        "R1" + out_trade_no,
        "2.34",
    )
    assert (refund["订单金额"], refund["应结订单金额"], refund["申请退款金额"]) == ("0.00", "0.00", "2.34")
    assert refund["手续费"] == "-0.01000"
    assert payment["交易时间"][:10] == day.isoformat()
    assert summary == {
        "总交易单数": "2",
        "应结订单总金额": "12.34",
        "退款总金额": "2.34",
        "充值券退款总金额": "0.00",
        "手续费总金额": "0.06000",
        "订单总金额": "12.34",
        "申请退款总金额": "2.34",
    }


@pytest.mark.parametrize(
    ("bill_type", "columns", "states"), [("SUCCESS", 20, {"SUCCESS"}), ("REFUND", 29, {"REFUND"})]
)
def test_trade_bill_types(
    caller: MerchantCaller,
    credentials: Credentials,
    out_trade_no: str,
    bill_type: str,
    columns: int,
    states: set[str],
) -> None:
    paid(caller, credentials, out_trade_no)
    refunded(caller, out_trade_no, "R" + out_trade_no, 100)
    day = beijing_today(caller)
    open_day(caller, day)
    _, content = fetch(caller, f"/v3/bill/tradebill?bill_date={day}&bill_type={bill_type}")  # plain text
    header, rows, _ = read_csv(content)
    assert len(header) == columns
    assert {row["交易状态"] for row in rows} == states


def test_fundflow_bill(caller: MerchantCaller, credentials: Credentials, out_trade_no: str) -> None:
    paid(caller, credentials, out_trade_no, total=10_000)
    refunded(caller, out_trade_no, "R" + out_trade_no, 5_000, total=10_000)
    day = beijing_today(caller)
    open_day(caller, day)
    answer, content = fetch(caller, f"/v3/bill/fundflowbill?bill_date={day}&account_type=BASIC&tar_type=GZIP")
    assert answer["hash_value"] == hashlib.sha1(content).hexdigest()  # noqa: S324
    header, rows, summary = read_csv(content)
    assert len(header) == 11
    assert [(r["业务名称"], r["收支类型"], r["收支金额(元)"]) for r in rows] == [
        ("交易", "收入", "100.00"),
        ("扣除交易手续费", "支出", "0.60"),
        ("退款", "支出", "49.70"),
    ]
    assert rows[2]["业务凭证号"] == "R" + out_trade_no
    assert summary == {
        "资金流水总笔数": "3",
        "收入笔数": "1",
        "收入金额": "100.00",
        "支出笔数": "2",
        "支出金额": "50.30",
    }


def test_download_token_is_short_lived(
    caller: MerchantCaller, credentials: Credentials, out_trade_no: str
) -> None:
    paid(caller, credentials, out_trade_no)
    day = beijing_today(caller)
    open_day(caller, day)
    url = httpx.URL(caller.call("GET", f"/v3/bill/tradebill?bill_date={day}").json()["download_url"])
    caller.control("POST", "clock", {"advance_s": 31})
    expired = caller.call("GET", url.raw_path.decode())
    assert (expired.status, expired.json()["code"]) == (400, "INVALID_REQUEST")


def test_per_order_bill_faults(caller: MerchantCaller, credentials: Credentials, out_trade_no: str) -> None:
    omitted, drifted = out_trade_no, out_trade_no + "d"
    paid(caller, credentials, omitted)
    paid(caller, credentials, drifted)
    caller.control("POST", f"orders/{omitted}/faults", {"bill_omit": True})
    caller.control("POST", f"orders/{drifted}/faults", {"bill_amount_delta_fen": 7})
    day = beijing_today(caller)
    open_day(caller, day)
    _, content = fetch(caller, f"/v3/bill/tradebill?bill_date={day}")
    _, rows, _ = read_csv(content)
    assert [(r["商户订单号"], r["订单金额"]) for r in rows] == [(drifted, "1.07")]


def test_global_file_faults(caller: MerchantCaller, credentials: Credentials, out_trade_no: str) -> None:
    paid(caller, credentials, out_trade_no)
    day = beijing_today(caller)
    open_day(caller, day)
    caller.control("PUT", "config", {"bill_bom": True, "bill_crlf": True, "bill_hash_mismatch": True})
    answer, content = fetch(caller, f"/v3/bill/tradebill?bill_date={day}&tar_type=GZIP")
    assert content.startswith("\ufeff交易时间".encode())
    assert content.count(b"\r\n") == 4  # header, one row, summary header, summary
    assert answer["hash_value"] != hashlib.sha1(content).hexdigest()  # noqa: S324
    _, rows, _ = read_csv(content)
    assert rows[0]["商户订单号"] == out_trade_no


def test_bill_routes_demand_a_signature(sandbox: RunningSandbox) -> None:
    answer = httpx.get(f"{sandbox.base_url}/v3/bill/tradebill?bill_date=2026-01-01")
    assert (answer.status_code, answer.json()["code"]) == (401, "SIGN_ERROR")
