"""The key life cycle (issue 11): key modes, the public-key migration ramp and its rollback, certificate
rotation, decryption faults and raw-body traps — over real HTTP, verified with the keys a merchant holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.app import RunningSandbox
from sandbox.config import SandboxConfig
from sandbox.engine.faults import Dice
from sandbox.keys import signing
from sandbox.keys.bundle import Credentials
from sandbox.keys.keyring import PUBLISHED_BEFORE_EXPIRY, RAMP_BEFORE_EXPIRY
from sandbox.keys.modes import KeyLifecycle
from sandbox.testing import (
    Answer,
    MerchantCaller,
    NotificationReceiver,
    Received,
    key_for_serial,
    prepay_body,
    signature_verifies,
    wait_until,
)

MakeSandbox = Callable[..., RunningSandbox]
MODES = ("certificate", "migrating", "public_key", "public_key_only")


def listed(caller: MerchantCaller) -> dict[str, dict[str, Any]]:
    """`/v3/certificates`, decrypted: serial → {entry, pem, cert}."""
    answer = caller.call("GET", "/v3/certificates")
    assert answer.status == 200, answer.body
    out: dict[str, dict[str, Any]] = {}
    for entry in answer.json()["data"]:
        enc = entry["encrypt_certificate"]
        pem = signing.decrypt_resource(
            caller.credentials.apiv3_key, enc["nonce"], "certificate", enc["ciphertext"]
        )
        out[entry["serial_no"]] = {
            "entry": entry,
            "pem": pem.decode(),
            "cert": x509.load_pem_x509_certificate(pem),
        }
    return out


def other_key(credentials: Credentials, serial: str) -> rsa.RSAPublicKey:
    """The key a confused verifier would use: the certificate's for a public-key serial and vice versa."""
    if serial == credentials.wechatpay_public_key_id:
        return key_for_serial(credentials, credentials.platform_cert_serial_no)
    return credentials.wechatpay_public_key


def pay_and_receive(caller: MerchantCaller, receiver: NotificationReceiver, out_trade_no: str) -> Received:
    body = prepay_body(caller.credentials, out_trade_no, receiver.url)
    assert caller.call("POST", "/v3/pay/transactions/jsapi", body).status == 200
    caller.control("POST", f"orders/{out_trade_no}/pay")
    got = receiver.wait_for(lambda r: any(_trade_of(x, caller) == out_trade_no for x in r))
    return next(x for x in got if _trade_of(x, caller) == out_trade_no)


def _trade_of(received: Received, caller: MerchantCaller) -> str:
    resource = json.loads(received.body)["resource"]
    plain = signing.decrypt_resource(
        caller.credentials.apiv3_key, resource["nonce"], resource["associated_data"], resource["ciphertext"]
    )
    value: str = json.loads(plain)["out_trade_no"]
    return value


def query(caller: MerchantCaller, out_trade_no: str, serial: str | None) -> Answer:
    headers = {"Wechatpay-Serial": serial} if serial else {}
    mchid = caller.credentials.mchid
    return caller.call(
        "GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={mchid}", headers=headers
    )


@pytest.mark.parametrize("mode", MODES)
def test_wrong_key_verification_fails_in_every_mode(
    make_sandbox: MakeSandbox,
    make_caller: Callable[..., MerchantCaller],
    credentials: Credentials,
    receiver: NotificationReceiver,
    out_trade_no: str,
    mode: str,
) -> None:
    caller = make_caller(make_sandbox(key_mode=mode, migration_ramp_s=0.0))
    note = pay_and_receive(caller, receiver, out_trade_no)
    pub_id, cert_serial = credentials.wechatpay_public_key_id, credentials.platform_cert_serial_no
    expected_notification = cert_serial if mode == "certificate" else pub_id  # migrating: ramp of 0 s is done
    assert note.headers["Wechatpay-Serial"] == expected_notification
    signed = [(note.headers, note.body)]
    for asked in (pub_id, cert_serial, None):
        answer = query(caller, out_trade_no, asked)
        assert answer.status == 200
        if mode == "public_key_only":
            expected = pub_id
        elif mode == "certificate":
            expected = cert_serial
        else:  # the request's Wechatpay-Serial decides
            expected = pub_id if asked == pub_id else cert_serial
        assert answer.headers["wechatpay-serial"] == expected
        signed.append((answer.headers, answer.body))
    for headers, body in signed:
        serial = {k.lower(): v for k, v in headers.items()}["wechatpay-serial"]
        assert signature_verifies(headers, body, key_for_serial(credentials, serial))
        assert not signature_verifies(headers, body, other_key(credentials, serial))
    certificates = caller.call("GET", "/v3/certificates")
    assert certificates.status == (404 if mode == "public_key_only" else 200)


def test_migration_ramp_grows_and_stop_rolls_back(
    sandbox: RunningSandbox, caller: MerchantCaller, credentials: Credentials, receiver: NotificationReceiver
) -> None:
    pub_id, cert_serial = credentials.wechatpay_public_key_id, credentials.platform_cert_serial_no
    held = caller.control("PUT", "keys/mode", {"mode": "migrating", "share": 0})
    assert held["migration"]["public_key_share"] == 0
    assert pay_and_receive(caller, receiver, "MIG00001").headers["Wechatpay-Serial"] == cert_serial
    caller.control("PUT", "keys/mode", {"mode": "migrating", "ramp_s": 0.5})
    shares = [caller.control("GET", "keys")["migration"]["public_key_share"]]
    wait_until(
        lambda: (
            shares.append(caller.control("GET", "keys")["migration"]["public_key_share"]) or shares[-1] >= 1
        )
    )
    assert shares == sorted(shares)
    assert shares[0] < 1
    assert shares[-1] == 1
    assert pay_and_receive(caller, receiver, "MIG00002").headers["Wechatpay-Serial"] == pub_id
    stopped = caller.control("POST", "keys/migration/stop")
    assert (stopped["mode"], stopped["migration"]) == ("certificate", None)
    assert pay_and_receive(caller, receiver, "MIG00003").headers["Wechatpay-Serial"] == cert_serial


def test_rotation_drill_lists_the_successor_then_switches_to_it(
    caller: MerchantCaller, credentials: Credentials, receiver: NotificationReceiver
) -> None:
    old = credentials.platform_cert_serial_no
    caller.control("PUT", "keys/mode", {"mode": "certificate"})
    state = caller.control("POST", "keys/rotation", {"share": 0})
    new = state["rotation"]["successor"]
    certs = listed(caller)
    assert set(certs) == {old, new}
    for serial, item in certs.items():  # listed validity is the certificate's own
        cert = item["cert"]
        assert datetime.fromisoformat(item["entry"]["effective_time"]) == cert.not_valid_before_utc.replace(
            microsecond=0
        )
        assert datetime.fromisoformat(item["entry"]["expire_time"]) == cert.not_valid_after_utc.replace(
            microsecond=0
        )
        assert f"{cert.serial_number:X}" == serial
    pems = tuple(item["pem"] for item in certs.values())
    assert query(caller, "ROT00001", None).headers["wechatpay-serial"] == old
    caller.control("POST", "keys/rotation", {"share": 1})
    state = caller.control("GET", "keys")
    new = state["rotation"]["successor"]
    pems = tuple(item["pem"] for item in listed(caller).values())
    note = pay_and_receive(caller, receiver, "ROT00002")
    assert note.headers["Wechatpay-Serial"] == new
    assert signature_verifies(note.headers, note.body, key_for_serial(credentials, new, pems))
    assert not signature_verifies(note.headers, note.body, key_for_serial(credentials, old))
    caller.control("POST", "keys/rotation", {"duration_s": 0.4})
    final = wait_until(lambda: (s := caller.control("GET", "keys"))["rotation"] is None and s)
    (current,) = final["certificates"]
    assert current["serial_no"] != old
    assert set(listed(caller)) == {current["serial_no"]}
    assert query(caller, "ROT00002", None).headers["wechatpay-serial"] == current["serial_no"]


def test_public_key_only_merchant_cannot_rotate_and_migration_excludes_rotation(
    caller: MerchantCaller,
) -> None:
    caller.control("PUT", "keys/mode", {"mode": "public_key_only"})
    with pytest.raises(Exception, match="400"):
        caller.control("POST", "keys/rotation", {"duration_s": 1})
    caller.control("PUT", "keys/mode", {"mode": "certificate"})
    caller.control("POST", "keys/rotation", {"duration_s": 60})
    with pytest.raises(Exception, match="400"):
        caller.control("PUT", "keys/mode", {"mode": "migrating"})


def test_natural_rotation_follows_the_certificates_own_expiry(credentials: Credentials) -> None:
    """No drill: 10 days before expiry the successor is listed; the last 5 days ramp; then it takes over."""
    expiry = x509.load_pem_x509_certificate(credentials.platform_cert_pem.encode()).not_valid_after_utc
    now = [expiry - PUBLISHED_BEFORE_EXPIRY - timedelta(hours=1)]
    config = SandboxConfig(credentials=credentials, key_mode="certificate")
    keys = KeyLifecycle(credentials, lambda: config, Dice(1), lambda: now[0])
    assert [c.serial_no for c in keys.listed_certificates()] == [credentials.platform_cert_serial_no]
    now[0] = expiry - timedelta(days=7)
    assert len(keys.listed_certificates()) == 2
    assert keys.describe()["rotation"]["successor_share"] == 0.0
    assert keys.notification_signer().serial == credentials.platform_cert_serial_no
    now[0] = expiry - RAMP_BEFORE_EXPIRY / 2
    assert keys.describe()["rotation"]["successor_share"] == pytest.approx(0.5)
    serials = {keys.notification_signer().serial for _ in range(200)}
    assert len(serials) == 2  # both certificates sign during the ramp
    now[0] = expiry + timedelta(seconds=1)
    (current,) = keys.listed_certificates()
    assert current.serial_no != credentials.platform_cert_serial_no
    assert current.not_after - current.not_before > timedelta(days=5 * 365 - 1)
    assert keys.notification_signer().serial == current.serial_no


@pytest.mark.parametrize("fault", ["notify_wrong_apiv3_key", "notify_wrong_associated_data"])
def test_decryption_faults_are_signed_but_do_not_decrypt(
    caller: MerchantCaller,
    credentials: Credentials,
    receiver: NotificationReceiver,
    out_trade_no: str,
    fault: str,
) -> None:
    caller.call("POST", "/v3/pay/transactions/jsapi", prepay_body(credentials, out_trade_no, receiver.url))
    caller.control("POST", f"orders/{out_trade_no}/faults", {fault: True})
    caller.control("POST", f"orders/{out_trade_no}/pay")
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    assert signature_verifies(
        got.headers, got.body, key_for_serial(credentials, got.headers["Wechatpay-Serial"])
    )
    resource = json.loads(got.body)["resource"]
    with pytest.raises(ValueError, match="does not decrypt"):
        signing.decrypt_resource(
            credentials.apiv3_key, resource["nonce"], resource["associated_data"], resource["ciphertext"]
        )


def test_raw_body_traps_catch_re_serialising_and_line_reading_verifiers(
    caller: MerchantCaller, credentials: Credentials, receiver: NotificationReceiver, out_trade_no: str
) -> None:
    caller.call("POST", "/v3/pay/transactions/jsapi", prepay_body(credentials, out_trade_no, receiver.url))
    caller.control("POST", f"orders/{out_trade_no}/faults", {"raw_body_traps": True})
    caller.control("POST", f"orders/{out_trade_no}/pay")
    (got,) = receiver.wait_for(lambda r: len(r) == 1)
    key = key_for_serial(credentials, got.headers["Wechatpay-Serial"])
    assert signature_verifies(got.headers, got.body, key)  # the raw bytes verify
    envelope = json.loads(got.body)
    assert "\n" in envelope["summary"]
    assert "沙箱" in envelope["summary"]
    assert b"\r\n" in got.body
    assert "✓".encode() in got.body
    reserialised = json.dumps(envelope).encode()
    compact = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    line_joined = b"".join(got.body.splitlines())
    for mutated in (reserialised, compact, line_joined):
        assert not signature_verifies(got.headers, mutated, key)
    resource = envelope["resource"]
    plain = json.loads(
        signing.decrypt_resource(
            credentials.apiv3_key, resource["nonce"], "transaction", resource["ciphertext"]
        )
    )
    assert plain["trade_state_desc"].startswith("支付成功\n")
    assert "\\n" in plain["trade_state_desc"]
    assert plain["out_trade_no"] == out_trade_no


def test_reset_restores_the_start_up_keys(
    make_sandbox: MakeSandbox, make_caller: Callable[..., MerchantCaller]
) -> None:
    caller = make_caller(make_sandbox(key_mode="certificate"))
    caller.control("POST", "keys/rotation", {"share": 1})
    caller.control("POST", "reset")
    state = caller.control("GET", "keys")
    assert (state["mode"], state["rotation"], len(state["certificates"])) == ("certificate", None, 1)


def test_legacy_knobs_still_map_to_modes(
    make_sandbox: MakeSandbox, make_caller: Callable[..., MerchantCaller]
) -> None:
    assert make_caller(make_sandbox()).control("GET", "keys")["mode"] == "public_key"
    caller = make_caller(make_sandbox(notify_sign_mode="cert"))
    state = caller.control("GET", "keys")
    assert (state["mode"], state["migration"]["public_key_share"]) == ("migrating", 0.0)
    caller.control("PUT", "config", {"certificates_available": False})
    assert caller.control("GET", "keys")["mode"] == "public_key_only"
