"""The sandbox plays several accounts at once: two direct merchants in different key modes and a
service provider (服务商) with two sub-merchants; cross-account calls are refused as WeChat refuses them."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sandbox.app import RunningSandbox, run_in_thread
from sandbox.config import SandboxConfig
from sandbox.engine.models import CHINA
from sandbox.keys import signing
from sandbox.keys.accounts import AccountsError, AccountSpec, init_accounts, load_accounts
from sandbox.keys.bundle import Credentials
from sandbox.testing import MerchantCaller, NotificationReceiver, prepay_body, wait_until


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AccountSpec]:
    directory = tmp_path_factory.mktemp("accounts")
    init_accounts(directory)
    return {spec.name: spec for spec in load_accounts(directory)}


@pytest.fixture
def world(accounts: dict[str, AccountSpec], credentials: Credentials) -> Iterator[RunningSandbox]:
    # A second provider (the session's single bundle) with no sub-merchants: for NO_AUTH.
    other = AccountSpec("sp2", "provider", credentials.mchid, {}, credentials)
    specs = (*accounts.values(), other)
    config = SandboxConfig(credentials=accounts["direct-pk"].credentials, accounts=specs, time_scale=0.01)  # type: ignore[arg-type]
    running = run_in_thread(config)
    yield running
    running.stop()


def creds(spec: AccountSpec) -> Credentials:
    assert spec.credentials is not None
    return spec.credentials


@pytest.fixture
def callers(
    world: RunningSandbox, accounts: dict[str, AccountSpec], credentials: Credentials
) -> Iterator[dict[str, MerchantCaller]]:
    made = {
        name: MerchantCaller(world.base_url, creds(accounts[name]))
        for name in ("direct-pk", "direct-cert", "sp")
    }
    made["sp2"] = MerchantCaller(world.base_url, credentials)
    yield made
    for caller in made.values():
        caller.close()


def no() -> str:
    return "T" + secrets.token_hex(10)


def partner_body(
    sp: AccountSpec, sub: AccountSpec, out_trade_no: str, url: str, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sp_appid": sp.apps["jsapi"],
        "sp_mchid": sp.mchid,
        "sub_mchid": sub.mchid,
        "description": "VIP 月卡",
        "out_trade_no": out_trade_no,
        "notify_url": url,
        "amount": {"total": 100, "currency": "CNY"},
        "payer": {"sp_openid": "o_sp_" + secrets.token_hex(8)},
    }
    body.update(extra)
    return body


def decrypt(received: Any, key: str) -> dict[str, Any]:
    resource = json.loads(received.body)["resource"]
    plain = signing.decrypt_resource(
        key, resource["nonce"], resource["associated_data"], resource["ciphertext"]
    )
    return json.loads(plain)


def test_two_direct_merchants_keep_their_own_orders_under_one_out_trade_no(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec], receiver: NotificationReceiver
) -> None:
    shared = no()
    for name in ("direct-pk", "direct-cert"):
        body = prepay_body(creds(accounts[name]), shared, receiver.url, payer={"openid": "o_" + no()})
        answer = callers[name].call("POST", "/v3/pay/transactions/jsapi", body)
        assert answer.status == 200, answer.body
    pk = accounts["direct-pk"]
    paid = callers["direct-pk"].control("POST", f"orders/{shared}/pay?mchid={pk.mchid}")
    assert paid["trade_state"] == "SUCCESS"
    cert = accounts["direct-cert"]
    seen = (
        callers["direct-cert"]
        .call("GET", f"/v3/pay/transactions/out-trade-no/{shared}?mchid={cert.mchid}")
        .json()
    )
    assert (seen["mchid"], seen["trade_state"]) == (cert.mchid, "NOTPAY")
    # The control API will not guess which of the two is meant.
    with pytest.raises(Exception, match="400"):
        callers["direct-pk"].control("GET", f"orders/{shared}")


def test_each_direct_merchant_signs_in_its_own_key_mode(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec]
) -> None:
    pk, cert = creds(accounts["direct-pk"]), creds(accounts["direct-cert"])
    ask_public = {"Wechatpay-Serial": pk.wechatpay_public_key_id}
    answer = callers["direct-pk"].call(
        "GET", f"/v3/pay/transactions/out-trade-no/{no()}?mchid={pk.mchid}", headers=ask_public
    )
    assert answer.headers["wechatpay-serial"] == pk.wechatpay_public_key_id
    ask_public = {"Wechatpay-Serial": cert.wechatpay_public_key_id}
    answer = callers["direct-cert"].call(
        "GET", f"/v3/pay/transactions/out-trade-no/{no()}?mchid={cert.mchid}", headers=ask_public
    )
    assert answer.headers["wechatpay-serial"] == cert.platform_cert_serial_no  # certificate mode ignores it


def test_an_appid_of_another_merchant_is_refused(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec]
) -> None:
    body = prepay_body(
        creds(accounts["direct-pk"]), no(), "https://example.com/n", appid=accounts["direct-cert"].apps["app"]
    )
    answer = callers["direct-pk"].call("POST", "/v3/pay/transactions/app", body)
    assert (answer.status, answer.json()["code"]) == (400, "APPID_MCHID_NOT_MATCH")


def test_every_app_of_a_merchant_is_bound_to_it(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec]
) -> None:
    pk = accounts["direct-pk"]
    for channel, path in (("app", "app"), ("miniprogram", "jsapi"), ("jsapi", "jsapi")):
        body = prepay_body(
            creds(pk),
            no(),
            "https://example.com/n",
            appid=pk.apps[channel],
            payer={"openid": f"o_{channel}_{no()}"},
        )
        assert callers["direct-pk"].call("POST", f"/v3/pay/transactions/{path}", body).status == 200


def test_an_openid_belongs_to_the_appid_it_came_from(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec]
) -> None:
    pk, openid = accounts["direct-pk"], "o_one_app_" + secrets.token_hex(6)
    first = prepay_body(
        creds(pk), no(), "https://example.com/n", appid=pk.apps["jsapi"], payer={"openid": openid}
    )
    assert callers["direct-pk"].call("POST", "/v3/pay/transactions/jsapi", first).status == 200
    other = prepay_body(
        creds(pk), no(), "https://example.com/n", appid=pk.apps["miniprogram"], payer={"openid": openid}
    )
    answer = callers["direct-pk"].call("POST", "/v3/pay/transactions/jsapi", other)
    assert (answer.status, answer.json()["code"]) == (400, "PARAM_ERROR")
    assert answer.json()["detail"]["field"] == "/payer/openid"


def test_a_direct_merchant_has_no_partner_rights(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec]
) -> None:
    pk = accounts["direct-pk"]
    body = partner_body(pk, accounts["sp-sub-a"], no(), "https://example.com/n")
    answer = callers["direct-pk"].call("POST", "/v3/pay/partner/transactions/jsapi", body)
    assert (answer.status, answer.json()["code"]) == (403, "NO_AUTH")


def test_partner_jsapi_pays_and_notifies_with_the_providers_keys(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec], receiver: NotificationReceiver
) -> None:
    sp, sub = accounts["sp"], accounts["sp-sub-a"]
    out_trade_no, sub_openid = no(), "o_sub_" + secrets.token_hex(6)
    body = partner_body(
        sp,
        sub,
        out_trade_no,
        receiver.url,
        sub_appid=sub.apps["miniprogram"],
        payer={"sub_openid": sub_openid},
    )
    answer = callers["sp"].call("POST", "/v3/pay/partner/transactions/jsapi", body)
    assert answer.status == 200, answer.body
    assert answer.json()["prepay_id"].startswith("wx")
    callers["sp"].control("POST", f"orders/{out_trade_no}/pay")
    received = wait_until(lambda: receiver.received)[0]
    resource = decrypt(received, creds(sp).apiv3_key)
    assert {k: resource[k] for k in ("sp_appid", "sp_mchid", "sub_appid", "sub_mchid")} == {
        "sp_appid": sp.apps["jsapi"],
        "sp_mchid": sp.mchid,
        "sub_appid": sub.apps["miniprogram"],
        "sub_mchid": sub.mchid,
    }
    assert resource["payer"]["sub_openid"] == sub_openid
    assert "mchid" not in resource
    query = (
        f"/v3/pay/partner/transactions/out-trade-no/{out_trade_no}?sp_mchid={sp.mchid}&sub_mchid={sub.mchid}"
    )
    seen = callers["sp"].call("GET", query).json()
    assert (seen["trade_state"], seen["sub_mchid"]) == ("SUCCESS", sub.mchid)
    by_id = callers["sp"].call(
        "GET",
        f"/v3/pay/partner/transactions/id/{seen['transaction_id']}?sp_mchid={sp.mchid}&sub_mchid={sub.mchid}",
    )
    assert by_id.json()["out_trade_no"] == out_trade_no
    # The other sub-merchant does not see it.
    other = accounts["sp-sub-b"]
    missing = callers["sp"].call(
        "GET",
        f"/v3/pay/partner/transactions/out-trade-no/{out_trade_no}?sp_mchid={sp.mchid}&sub_mchid={other.mchid}",
    )
    assert missing.status == 404


def test_partner_refund_names_the_sub_merchant_and_notifies_in_partner_shape(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec], receiver: NotificationReceiver
) -> None:
    sp, sub = accounts["sp"], accounts["sp-sub-b"]
    out_trade_no = no()
    body = partner_body(sp, sub, out_trade_no, receiver.url)
    del body["payer"]
    assert callers["sp"].call("POST", "/v3/pay/partner/transactions/native", body).status == 200
    callers["sp"].control("POST", f"orders/{out_trade_no}/pay")
    refund = {
        "sub_mchid": sub.mchid,
        "out_trade_no": out_trade_no,
        "out_refund_no": "R" + no(),
        "amount": {"refund": 100, "total": 100, "currency": "CNY"},
    }
    answer = callers["sp"].call("POST", "/v3/refund/domestic/refunds", refund)
    assert answer.status == 200, answer.body
    queried = callers["sp"].call(
        "GET", f"/v3/refund/domestic/refunds/{refund['out_refund_no']}?sub_mchid={sub.mchid}"
    )
    assert queried.status == 200
    notes = wait_until(lambda: [r for r in receiver.received if r.event_type.startswith("REFUND.")])
    resource = decrypt(notes[0], creds(sp).apiv3_key)
    assert (resource["sp_mchid"], resource["sub_mchid"]) == (sp.mchid, sub.mchid)
    # A direct merchant cannot name a sub-merchant; an unknown sub-merchant does not exist.
    direct = callers["direct-pk"].call("POST", "/v3/refund/domestic/refunds", refund)
    assert (direct.status, direct.json()["code"]) == (403, "NO_AUTH")
    unknown = callers["sp"].call("POST", "/v3/refund/domestic/refunds", {**refund, "sub_mchid": "1699999999"})
    assert (unknown.status, unknown.json()["code"]) == (404, "MCH_NOT_EXISTS")


def test_partner_refusals(callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec]) -> None:
    sp, sub_a, sub_b = accounts["sp"], accounts["sp-sub-a"], accounts["sp-sub-b"]
    url = "https://example.com/n"

    def prepay(caller: str, body: dict[str, Any]) -> tuple[int, str]:
        answer = callers[caller].call("POST", "/v3/pay/partner/transactions/jsapi", body)
        return answer.status, answer.json().get("code", "")

    unknown = partner_body(sp, sub_a, no(), url, sub_mchid="1699999999")
    assert prepay("sp", unknown) == (400, "MCH_NOT_EXISTS")
    wrong_sub_app = partner_body(sp, sub_b, no(), url, sub_appid=sub_a.apps["miniprogram"])
    assert prepay("sp", wrong_sub_app) == (400, "APPID_MCHID_NOT_MATCH")
    wrong_sp_app = partner_body(sp, sub_a, no(), url, sp_appid=accounts["direct-pk"].apps["jsapi"])
    assert prepay("sp", wrong_sp_app) == (400, "APPID_MCHID_NOT_MATCH")
    other_provider = callers["sp2"].credentials
    not_ours = partner_body(
        sp, sub_a, no(), url, sp_mchid=other_provider.mchid, sp_appid=other_provider.appid
    )
    assert prepay("sp2", not_ours) == (403, "NO_AUTH")
    sub_openid_without_app = partner_body(sp, sub_a, no(), url, payer={"sub_openid": "o_x"})
    assert prepay("sp", sub_openid_without_app) == (400, "PARAM_ERROR")


def test_partner_close_and_bill_with_sub_mchid(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec]
) -> None:
    sp, sub = accounts["sp"], accounts["sp-sub-a"]
    closed, paid = no(), no()
    for out_trade_no in (closed, paid):
        assert (
            callers["sp"]
            .call(
                "POST",
                "/v3/pay/partner/transactions/jsapi",
                partner_body(sp, sub, out_trade_no, "https://example.com/n"),
            )
            .status
            == 200
        )
    answer = callers["sp"].call(
        "POST",
        f"/v3/pay/partner/transactions/out-trade-no/{closed}/close",
        {"sp_mchid": sp.mchid, "sub_mchid": sub.mchid},
    )
    assert answer.status == 204
    callers["sp"].control("POST", f"orders/{paid}/pay")
    paid_at = datetime.fromisoformat(callers["sp"].control("GET", "clock")["now"]).astimezone(CHINA)
    next_morning = datetime.combine(paid_at.date() + timedelta(days=1), time(11), CHINA)
    callers["sp"].control("POST", "clock", {"now": next_morning.isoformat()})
    bill_date = paid_at.date().isoformat()
    apply = callers["sp"].call(
        "GET", f"/v3/bill/tradebill?bill_date={bill_date}&bill_type=ALL&sub_mchid={sub.mchid}"
    )
    assert apply.status == 200, apply.body
    token = apply.json()["download_url"].split("token=")[1]
    text = callers["sp"].call("GET", f"/v3/billdownload/file?token={token}").body.decode("utf-8")
    assert f"`{sub.mchid}" in text
    assert paid in text
    assert closed not in text


def test_newer_request_fields_are_accepted(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec]
) -> None:
    pk = creds(accounts["direct-pk"])
    body = prepay_body(
        pk, no(), "https://example.com/n",
        payer={"openid": "o_" + no(), "identity": {"type": "IDCARD", "number": "x", "name": "y"}},
        subsidy_info={"subsidy_detail": {"subsidy_period_type": "3"}},
    )  # fmt: skip
    answer = callers["direct-pk"].call("POST", "/v3/pay/transactions/jsapi", body)
    assert answer.status == 200, answer.body


def test_accounts_are_listed_on_the_control_api(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec]
) -> None:
    listed = callers["sp"].control("GET", "accounts")["accounts"]
    kinds = {(a["name"], a["kind"]) for a in listed}
    assert {
        ("direct-pk", "direct"),
        ("direct-cert", "direct"),
        ("sp", "provider"),
        ("sp-sub-a", "sub_merchant"),
        ("sp-sub-b", "sub_merchant"),
    } <= kinds
    modes = {a["name"]: a["key_mode"] for a in listed}
    assert (modes["direct-pk"], modes["direct-cert"]) == ("public_key", "certificate")


def test_a_sub_merchant_without_its_provider_refuses_to_load(tmp_path: Path) -> None:
    init_accounts(tmp_path)
    shutil.rmtree(tmp_path / "sp")
    with pytest.raises(AccountsError, match="account sp-sub-a: provider 'sp'"):
        load_accounts(tmp_path)


def _bill_day(caller: MerchantCaller, out_trade_no: str) -> str:
    """Pay the order now, then move the clock to the next morning's bills; the bill's day."""
    caller.control("POST", f"orders/{out_trade_no}/pay")
    paid_at = datetime.fromisoformat(caller.control("GET", "clock")["now"]).astimezone(CHINA)
    next_morning = datetime.combine(paid_at.date() + timedelta(days=1), time(11), CHINA)
    caller.control("POST", "clock", {"now": next_morning.isoformat()})
    return paid_at.date().isoformat()


def test_a_sub_merchants_fund_flow_bill_is_the_providers_to_fetch_and_comes_encrypted(
    callers: dict[str, MerchantCaller], accounts: dict[str, AccountSpec]
) -> None:
    sp, sub = accounts["sp"], accounts["sp-sub-a"]
    paid = no()
    body = partner_body(sp, sub, paid, "https://example.com/n")
    assert callers["sp"].call("POST", "/v3/pay/partner/transactions/jsapi", body).status == 200
    day = _bill_day(callers["sp"], paid)
    query = f"bill_date={day}&account_type=BASIC&algorithm=AEAD_AES_256_GCM&tar_type=GZIP"
    apply = callers["sp"].call("GET", f"/v3/bill/sub-merchant-fundflowbill?sub_mchid={sub.mchid}&{query}")
    assert apply.status == 200, apply.body
    answer = apply.json()
    assert answer["download_bill_count"] == 1
    (part,) = answer["download_bill_list"]
    assert {"bill_sequence", "download_url", "encrypt_key", "nonce", "hash_type", "hash_value"} <= set(part)
    sealed = callers["sp"].call("GET", part["download_url"].split(callers["sp"].base_url, 1)[-1]).body
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    key = creds(sp).merchant_private_key.decrypt(base64.b64decode(part["encrypt_key"]), oaep)
    text = gzip.decompress(AESGCM(key).decrypt(part["nonce"].encode(), sealed, None))
    assert hashlib.sha1(text).hexdigest() == part["hash_value"]  # noqa: S324
    assert "收入" in text.decode("utf-8")
    assert "交易".encode() not in sealed  # nothing readable on the wire

    refusals = {
        ("direct-pk", sub.mchid): "NO_AUTH",  # a direct merchant has no sub-merchants
        ("sp2", sub.mchid): "NO_AUTH",  # another provider's sub-merchant
        ("sp", "1999999999"): "MCH_NOT_EXISTS",
    }
    for (who, sub_mchid), code in refusals.items():
        refused = callers[who].call(
            "GET", f"/v3/bill/sub-merchant-fundflowbill?sub_mchid={sub_mchid}&{query}"
        )
        assert refused.json()["code"] == code, (who, refused.body)
        trade = callers[who].call("GET", f"/v3/bill/tradebill?bill_date={day}&sub_mchid={sub_mchid}")
        assert trade.json()["code"] == code, (who, trade.body)
