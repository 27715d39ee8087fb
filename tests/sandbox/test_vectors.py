"""The sandbox's own signing code against the known-answer vectors made with the public SDK
(`tests/vectors/wechatpay_v3.json`): verify request signatures, reproduce response signatures and
resource ciphertexts byte for byte, verify pay signs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.keys import signing

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
VECTORS: dict[str, Any] = json.loads((VECTORS_DIR / "wechatpay_v3.json").read_text(encoding="utf-8"))


def private_key(name: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((VECTORS_DIR / "keys" / name).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def public_key(name: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key((VECTORS_DIR / "keys" / name).read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def ids(kind: str) -> list[str]:
    return [f"{kind}{index}" for index, _ in enumerate(VECTORS[kind])]


@pytest.mark.parametrize("vector", VECTORS["request_signatures"], ids=ids("request_signatures"))
def test_request_signatures_verify(vector: dict[str, str]) -> None:
    body = vector["body"].encode()
    message = signing.request_message(
        vector["method"], vector["url"], vector["timestamp"], vector["nonce"], body
    )
    assert message == vector["message"].encode()
    auth = signing.parse_authorization(vector["authorization"])
    assert (auth.mchid, auth.serial_no, auth.signature) == (
        VECTORS["mchid"],
        VECTORS["merchant_serial_no"],
        vector["signature"],
    )
    signing.verify_request(
        auth,
        public_key("merchant_public_key.pem"),
        method=vector["method"],
        target=vector["url"],
        body=body,
        now=int(vector["timestamp"]),
    )
    rebuilt = signing.build_authorization(
        private_key("merchant_private_key.pem"),
        mchid=VECTORS["mchid"],
        serial_no=VECTORS["merchant_serial_no"],
        method=vector["method"],
        target=vector["url"],
        body=body,
        timestamp=vector["timestamp"],
        nonce=vector["nonce"],
    )
    assert signing.parse_authorization(rebuilt) == auth


@pytest.mark.parametrize("vector", VECTORS["request_signatures"][:1])
def test_a_tampered_request_does_not_verify(vector: dict[str, str]) -> None:
    auth = signing.parse_authorization(vector["authorization"])
    with pytest.raises(signing.SignatureError):
        signing.verify_request(
            auth,
            public_key("merchant_public_key.pem"),
            method=vector["method"],
            target=vector["url"] + "x",
            body=vector["body"].encode(),
            now=int(vector["timestamp"]),
        )


@pytest.mark.parametrize("vector", VECTORS["response_signatures"], ids=ids("response_signatures"))
def test_response_signatures_are_reproduced(vector: dict[str, str]) -> None:
    body = vector["body"].encode()
    assert signing.response_message(vector["timestamp"], vector["nonce"], body) == vector["message"].encode()
    headers = signing.signed_headers(
        private_key("wechatpay_private_key.pem"),
        vector["serial"],
        body,
        timestamp=vector["timestamp"],
        nonce=vector["nonce"],
    )
    assert headers["Wechatpay-Signature"] == vector["signature"]
    assert headers["Wechatpay-Serial"] == vector["serial"]
    assert signing.rsa_verify(
        public_key("wechatpay_public_key.pem"), vector["message"].encode(), vector["signature"]
    )


@pytest.mark.parametrize("vector", VECTORS["resources"], ids=ids("resources"))
def test_resources_encrypt_to_the_same_ciphertext(vector: dict[str, str]) -> None:
    key, nonce, aad = VECTORS["apiv3_key"], vector["nonce"], vector["associated_data"]
    plaintext = vector["plaintext"].encode()
    assert signing.encrypt_resource(key, nonce, aad, plaintext) == vector["ciphertext"]
    assert signing.decrypt_resource(key, nonce, aad, vector["ciphertext"]) == plaintext


@pytest.mark.parametrize("vector", VECTORS["pay_signs"], ids=ids("pay_signs"))
def test_pay_signs_verify(vector: dict[str, str]) -> None:
    message = signing.pay_sign_message(
        vector["kind"], vector["appid"], vector["timestamp"], vector["nonce"], vector["prepay_id"]
    )
    assert message == vector["message"].encode()
    assert signing.verify_pay_sign(
        public_key("merchant_public_key.pem"),
        kind=vector["kind"],
        appid=vector["appid"],
        timestamp=vector["timestamp"],
        nonce=vector["nonce"],
        prepay_id=vector["prepay_id"],
        signature=vector["signature"],
    )
    assert signing.rsa_sign(private_key("merchant_private_key.pem"), message) == vector["signature"]
