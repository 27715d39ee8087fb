"""The public `wechatpayv3` SDK's bill calls against the sandbox, unchanged: `trade_bill`,
`fundflow_bill` and `download_bill`; the file is checked with hashlib and read with the stdlib `csv`
module (not orderpay's parser)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import secrets
from collections.abc import Callable
from datetime import datetime, time, timedelta

import httpx
from wechatpayv3 import WeChatPay, WeChatPayType

from sandbox.app import RunningSandbox
from sandbox.engine.models import CHINA

MakeWxpay = Callable[[WeChatPayType], WeChatPay]


def read_bill(content: bytes) -> tuple[list[dict[str, str]], dict[str, str]]:
    header, *rest = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    cut = next(i for i, line in enumerate(rest) if not line[0].startswith("`"))
    rows = [dict(zip(header, (v.lstrip("`") for v in line), strict=True)) for line in rest[:cut]]
    return rows, dict(zip(rest[cut], (v.lstrip("`") for v in rest[cut + 1]), strict=True))


def download(wxpay: WeChatPay, answer: str) -> bytes:
    applied = json.loads(answer)
    code, body = wxpay.download_bill(applied["download_url"])
    assert code == 200
    assert isinstance(body, bytes)  # not JSON: the SDK hands back the raw (gzip) bytes
    content = gzip.decompress(body)
    assert hashlib.sha1(content).hexdigest() == applied["hash_value"]  # noqa: S324 - WeChat's digest
    return content


def test_trade_and_fundflow_bills_through_the_sdk(make_wxpay: MakeWxpay, sandbox: RunningSandbox) -> None:
    wxpay = make_wxpay(WeChatPayType.NATIVE)
    paid = []
    for total in (990, 1990):
        out_trade_no = "BL" + secrets.token_hex(8)
        code, _ = wxpay.pay(description="VIP 月卡", out_trade_no=out_trade_no, amount={"total": total})
        assert code == 200
        httpx.post(f"{sandbox.base_url}/sandbox/v1/orders/{out_trade_no}/pay").raise_for_status()
        paid.append(out_trade_no)
    code, _ = wxpay.refund(
        out_refund_no="RF" + paid[1],
        out_trade_no=paid[1],
        amount={"refund": 1990, "total": 1990, "currency": "CNY"},
    )
    assert code == 200
    now = datetime.fromisoformat(httpx.get(f"{sandbox.base_url}/sandbox/v1/clock").json()["now"])
    day = now.astimezone(CHINA).date()

    code, text = wxpay.trade_bill(bill_date=day.isoformat())
    assert (code, json.loads(text)["code"]) == (400, "STATEMENT_CREATING")

    ready = datetime.combine(day + timedelta(days=1), time(10, 1), tzinfo=CHINA)
    httpx.post(f"{sandbox.base_url}/sandbox/v1/clock", json={"now": ready.isoformat()}).raise_for_status()
    code, text = wxpay.trade_bill(bill_date=day.isoformat())  # ALL + GZIP, the SDK's defaults
    assert code == 200, text
    rows, summary = read_bill(download(wxpay, text))
    assert [(r["商户订单号"], r["交易状态"], r["订单金额"], r["退款金额"]) for r in rows] == [
        (paid[0], "SUCCESS", "9.90", "0.00"),
        (paid[1], "SUCCESS", "19.90", "0.00"),
        (paid[1], "REFUND", "0.00", "19.90"),
    ]
    assert (summary["总交易单数"], summary["订单总金额"], summary["退款总金额"]) == ("3", "29.80", "19.90")

    code, text = wxpay.fundflow_bill(bill_date=day.isoformat())
    assert code == 200, text
    rows, summary = read_bill(download(wxpay, text))
    assert summary["收入金额"] == "29.80"
    assert {r["业务名称"] for r in rows} == {"交易", "扣除交易手续费", "退款"}

    code, text = wxpay.trade_bill(bill_date=(day - timedelta(days=1)).isoformat())
    assert (code, json.loads(text)["code"]) == (400, "NO_STATEMENT_EXIST")
