"""The public `wechatpayv3` SDK, unchanged, against a sandbox playing several accounts: a direct
merchant in each key mode, and `partner_mode=True` (服务商) for a sub-merchant, the provider in either
key mode — prepay, query, callbacks, refund, close and the sub-merchant's trade bill."""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wechatpayv3 import WeChatPay, WeChatPayType

from sandbox.app import RunningSandbox, run_in_thread
from sandbox.config import SandboxConfig
from sandbox.keys.accounts import AccountSpec, init_accounts, load_accounts
from sandbox.keys.bundle import MERCHANT_PRIVATE_KEY, WECHATPAY_PUBLIC_KEY
from sandbox.testing import NotificationReceiver
from tests.support.sdk import sdk_callback

# (account the SDK speaks for, the provider's key mode, the SDK's mode)
CASES = [
    ("sp", "public_key", "pubkey"),
    ("sp", "certificate", "cert"),
    ("direct-pk", "public_key", "pubkey"),
    ("direct-cert", "public_key", "cert"),
]


@pytest.fixture(scope="module")
def accounts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("interop-accounts")
    init_accounts(directory)
    return directory


@pytest.fixture(params=CASES, ids=[f"{a}-{m}-sdk-{s}" for a, m, s in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    chosen: tuple[str, str, str] = request.param
    return chosen


@pytest.fixture
def accounts(accounts_dir: Path, case: tuple[str, str, str]) -> dict[str, AccountSpec]:
    specs = {spec.name: spec for spec in load_accounts(accounts_dir)}
    specs["sp"] = dataclasses.replace(specs["sp"], key_mode=case[1])
    return specs


@pytest.fixture
def world(accounts: dict[str, AccountSpec]) -> Iterator[RunningSandbox]:
    first = accounts["direct-pk"].credentials
    assert first is not None
    running = run_in_thread(SandboxConfig(credentials=first, accounts=tuple(accounts.values())))
    yield running
    running.stop()


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    rx = NotificationReceiver().start()
    yield rx
    rx.stop()


def sdk_for(
    accounts_dir: Path, spec: AccountSpec, sdk_mode: str, world: RunningSandbox, url: str, cert_dir: Path
) -> WeChatPay:
    creds = spec.credentials
    assert creds is not None
    directory = accounts_dir / spec.name
    keys = (
        {
            "public_key": (directory / WECHATPAY_PUBLIC_KEY).read_text(encoding="utf-8"),
            "public_key_id": creds.wechatpay_public_key_id,
        }
        if sdk_mode == "pubkey"
        else {"cert_dir": str(cert_dir)}
    )
    wxpay = WeChatPay(
        wechatpay_type=WeChatPayType.JSAPI,
        mchid=creds.mchid,
        private_key=(directory / MERCHANT_PRIVATE_KEY).read_text(encoding="utf-8"),
        cert_serial_no=creds.merchant_serial_no,
        appid=spec.apps["jsapi"],
        apiv3_key=creds.apiv3_key,
        notify_url=url,
        partner_mode=spec.kind == "provider",
        timeout=(5, 10),
        **keys,  # type: ignore[arg-type]
    )
    wxpay._core._gate_way = world.base_url  # no public option in 2.0.4 (research §13)
    return wxpay


def test_sdk_pays_refunds_and_closes_through_each_account_kind(
    accounts_dir: Path,
    accounts: dict[str, AccountSpec],
    world: RunningSandbox,
    receiver: NotificationReceiver,
    case: tuple[str, str, str],
    cert_dir: Path,
) -> None:
    name, _, sdk_mode = case
    spec = accounts[name]
    wxpay = sdk_for(accounts_dir, spec, sdk_mode, world, receiver.url, cert_dir)
    partner = spec.kind == "provider"
    sub = accounts["sp-sub-a"]
    scope = {"sub_mchid": sub.mchid} if partner else {}
    payer = (
        {"sp_openid": "o_sp_" + secrets.token_hex(6)} if partner else {"openid": "o_" + secrets.token_hex(6)}
    )
    out_trade_no = "IP" + secrets.token_hex(8)

    code, text = wxpay.pay(
        description="VIP 月卡", out_trade_no=out_trade_no, amount={"total": 990}, payer=payer, **scope
    )
    assert code == 200, text
    code, text = wxpay.query(out_trade_no=out_trade_no, **scope)
    assert (code, json.loads(text)["trade_state"]) == (200, "NOTPAY")

    query = f"?mchid={spec.mchid}" + (f"&sub_mchid={sub.mchid}" if partner else "")
    httpx.post(f"{world.base_url}/sandbox/v1/orders/{out_trade_no}/pay{query}").raise_for_status()
    (payment,) = receiver.wait_for(lambda r: len(r) == 1)
    transaction = sdk_callback(wxpay, payment)["resource"]
    assert transaction["out_trade_no"] == out_trade_no
    if partner:
        assert (transaction["sp_mchid"], transaction["sub_mchid"]) == (spec.mchid, sub.mchid)
    else:
        assert transaction["mchid"] == spec.mchid

    out_refund_no = "RP" + secrets.token_hex(8)
    amount = {"refund": 500, "total": 990, "currency": "CNY"}
    code, text = wxpay.refund(out_refund_no=out_refund_no, out_trade_no=out_trade_no, amount=amount, **scope)
    assert (code, json.loads(text)["status"]) == (200, "PROCESSING"), text
    refund_note = sdk_callback(wxpay, receiver.wait_for(lambda r: len(r) == 2)[1])
    assert refund_note["resource"]["out_refund_no"] == out_refund_no
    code, text = wxpay.query_refund(out_refund_no=out_refund_no, **scope)
    assert (code, json.loads(text)["status"]) == (200, "SUCCESS")

    other = "IC" + secrets.token_hex(8)
    payer2 = {"sp_openid": payer.get("sp_openid")} if partner else {"openid": payer.get("openid")}
    assert (
        wxpay.pay(description="x", out_trade_no=other, amount={"total": 1}, payer=payer2, **scope)[0] == 200
    )
    code, _ = wxpay.close(out_trade_no=other, **scope)
    assert code == 204
    code, text = wxpay.query(out_trade_no=other, **scope)
    assert json.loads(text)["trade_state"] == "CLOSED"
