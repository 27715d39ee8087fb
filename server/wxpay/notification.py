"""Inbound payment and refund notifications: verify, then decrypt.

`parse_notification` runs the checks in a fixed order (cheapest and most telling first), and stops at
the first failure with a `NotificationRejected` whose `outcome` the sidecar answers and counts. Nothing
is decrypted before the signature over the raw bytes has verified.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from server.domain.notification import Notification
from server.wxpay.certificates import KeyStore
from server.wxpay.credentials import MerchantCredentials
from server.wxpay.crypto import ALGORITHM, decrypt_resource
from server.wxpay.errors import MalformedError, UndecryptableError, UnknownAccountError
from server.wxpay.signing import MAX_CLOCK_SKEW_S, VerifierKeys, verify_signed_message
from server.wxpay.wire import notification_report

ENCRYPT_RESOURCE = "encrypt-resource"


def parse_notification(
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: MerchantCredentials,
    keys: VerifierKeys | KeyStore,
    now: float,
    max_skew_s: int = MAX_CLOCK_SKEW_S,
) -> Notification:
    """`keys`: fixed keys, or the shared KeyStore (which downloads certificates for an unknown serial)."""
    if isinstance(keys, KeyStore):
        keys.verify(headers, body, now=now, max_skew_s=max_skew_s)
    else:
        verify_signed_message(headers, body, keys=keys, now=now, max_skew_s=max_skew_s)
    envelope = _json_object(body, "notification body")
    notification_id = envelope.get("id")
    event_type = envelope.get("event_type")
    if not isinstance(notification_id, str) or not notification_id or not isinstance(event_type, str):
        raise MalformedError("notification lacks a string id or event_type")
    resource_type = envelope.get("resource_type")
    if resource_type != ENCRYPT_RESOURCE:
        raise MalformedError(f"resource_type is not {ENCRYPT_RESOURCE}")
    plaintext = _decrypt(envelope.get("resource"), credentials.apiv3_key)
    return Notification(
        id=notification_id,
        event_type=event_type,
        create_time=_text(envelope.get("create_time")),
        resource_type=resource_type,
        summary=_text(envelope.get("summary")),
        report=notification_report(event_type, _json_object(plaintext, "decrypted resource")),
    )


def _decrypt(resource: object, apiv3_key: str) -> bytes:
    if not isinstance(resource, dict):
        raise MalformedError("resource is not an object")
    nonce, ciphertext = resource.get("nonce"), resource.get("ciphertext")
    associated_data = resource.get("associated_data") or ""
    if not (isinstance(nonce, str) and isinstance(ciphertext, str) and isinstance(associated_data, str)):
        raise MalformedError("resource lacks nonce/ciphertext strings")
    if resource.get("algorithm") != ALGORITHM:
        raise UndecryptableError(f"resource algorithm is not {ALGORITHM}")
    return decrypt_resource(apiv3_key, nonce=nonce, associated_data=associated_data, ciphertext=ciphertext)


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MalformedError(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedError(f"{what} is not a JSON object")
    return value


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


ACCOUNT_HEADER = "Orderpay-Account"  # set by the notify sidecar from the URL's account segment


def accounts_parser(
    by_account: Mapping[str, tuple[MerchantCredentials, VerifierKeys | KeyStore]],
    default: str,
    max_skew_s: int = MAX_CLOCK_SKEW_S,
) -> Callable[[Mapping[str, str], bytes, float], Notification]:
    """Several accounts (issue 18): verify and decrypt with the keys of the account whose notify URL the
    notification came to (the sidecar writes it into `Orderpay-Account`, which is stored with the
    headers so a replay verifies the same way); the bare URL is the default account's. A sub-merchant's
    entry holds its provider's keys. An unknown account is refused like an unknown signing key."""

    def parse(headers: Mapping[str, str], body: bytes, now: float) -> Notification:
        account = _header(headers, ACCOUNT_HEADER) or default
        entry = by_account.get(account)
        if entry is None:
            raise UnknownAccountError(f"no merchant account {account!r} here")
        credentials, keys = entry
        note = parse_notification(
            headers, body, credentials=credentials, keys=keys, now=now, max_skew_s=max_skew_s
        )
        return replace(note, account=account)

    return parse


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    return next((str(v) for k, v in headers.items() if k.lower() == lowered), "")


def notification_parser(
    credentials: MerchantCredentials, keys: VerifierKeys | KeyStore, max_skew_s: int = MAX_CLOCK_SKEW_S
) -> Callable[[Mapping[str, str], bytes, float], Notification]:
    """`parse_notification` with this merchant's keys bound: the service layer's NotificationParser."""

    def parse(headers: Mapping[str, str], body: bytes, now: float) -> Notification:
        return parse_notification(
            headers, body, credentials=credentials, keys=keys, now=now, max_skew_s=max_skew_s
        )

    return parse
