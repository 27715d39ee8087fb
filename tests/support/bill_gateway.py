"""A loopback WeChat Pay bill gateway serving whatever bill files a test chooses, per day.

The apply answers are signed with the bundle's WeChat Pay key (as WeChat signs them) and carry the
SHA1 of the file; the download is unsigned, like WeChat's. Days without a file are
`NO_STATEMENT_EXIST`. It counts applies, so a test can see how often the bill API was asked.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import Counter
from datetime import date
from pathlib import Path

from aiohttp import web

from sandbox.app import RunningServer, serve_in_thread
from sandbox.keys.bundle import load_credentials
from sandbox.keys.signing import signed_headers

TRADE_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
    "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,"
    "商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)


def trade_row(
    day: date, out_trade_no: str, amount: str, *, fee: str = "0.01000", time_of_day: str = "12:00:00"
) -> str:
    fields = [
        f"{day.isoformat()} {time_of_day}", "wxapp", "1900000109", "0", "", "42000" + out_trade_no[-10:],
        out_trade_no, "oUser", "NATIVE", "SUCCESS", "OTHERS", "CNY", amount, "0.00", "0", "0", "0.00",
        "0.00", "", "", "vip", "", fee, "0.60%", amount, "0.00", "",
    ]  # fmt: skip
    return ",".join("`" + f for f in fields)


def trade_bill(*rows: str) -> bytes:
    return ("\n".join([TRADE_HEADER, *rows]) + "\n").encode()


class BillGateway:
    def __init__(self, keys: Path) -> None:
        self.credentials = load_credentials(keys)
        self.trade: dict[date, bytes] = {}
        self.applies: Counter[str] = Counter()
        self._files: dict[str, bytes] = {}
        self._server: RunningServer | None = None
        self.base_url = ""

    def start(self) -> str:
        app = web.Application()
        app.router.add_get("/v3/bill/tradebill", self._apply_trade)
        app.router.add_get("/v3/bill/fundflowbill", self._apply_fund)
        app.router.add_get("/v3/billdownload/file", self._download)
        self._server = serve_in_thread(app)
        self.base_url = self._server.base_url
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def _signed(self, status: int, body: object) -> web.Response:
        raw = json.dumps(body).encode()
        headers = signed_headers(
            self.credentials.wechatpay_private_key,
            self.credentials.wechatpay_public_key_id,
            raw,
            timestamp=str(int(time.time())),
            nonce=secrets.token_hex(16),
        )
        return web.Response(status=status, body=raw, headers={**headers, "Content-Type": "application/json"})

    def _apply(self, content: bytes | None) -> web.Response:
        if content is None:
            return self._signed(400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"})
        token = secrets.token_urlsafe(16)
        self._files[token] = content
        return self._signed(
            200,
            {
                "hash_type": "SHA1",
                "hash_value": hashlib.sha1(content).hexdigest(),  # noqa: S324 - WeChat's bill digest
                "download_url": f"{self.base_url}/v3/billdownload/file?token={token}",
            },
        )

    async def _apply_trade(self, request: web.Request) -> web.Response:
        day = date.fromisoformat(request.query["bill_date"])
        self.applies[f"trade {day}"] += 1
        return self._apply(self.trade.get(day))

    async def _apply_fund(self, request: web.Request) -> web.Response:
        day = date.fromisoformat(request.query["bill_date"])
        self.applies[f"fund {day}"] += 1
        return self._apply(None)

    async def _download(self, request: web.Request) -> web.Response:
        return web.Response(body=self._files.get(request.query.get("token", ""), b""))
