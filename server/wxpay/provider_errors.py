"""WeChat Pay error responses → `server.domain.errors` (research/wechatpay-v3.md §12).

Codes are normalised so callers branch on one spelling: current docs use underscores
(`ORDER_NOT_EXIST`, `NOT_ENOUGH`), legacy tables do not (`ORDERNOTEXIST`, `NOTENOUGH`). The one
exception is `ORDERPAID`, which is how the paid-order code is spelled in practice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from server.domain.errors import DomainError, ProviderRejectedError, ProviderUnavailableError

LEGACY_CODES: Mapping[str, str] = {
    "ORDERNOTEXIST": "ORDER_NOT_EXIST",
    "ORDER_PAID": "ORDERPAID",
    "ORDERCLOSED": "ORDER_CLOSED",
    "SYSTEMERROR": "SYSTEM_ERROR",
    "BANKERROR": "BANK_ERROR",
    "NOTENOUGH": "NOT_ENOUGH",
    "ACCOUNTERROR": "ACCOUNT_ERROR",
    "RULELIMIT": "RULE_LIMIT",
    "NOAUTH": "NO_AUTH",
    "PARAMERROR": "PARAM_ERROR",
    "SIGNERROR": "SIGN_ERROR",
    "FREQUENCYLIMITED": "FREQUENCY_LIMITED",
    "TRADEERROR": "TRADE_ERROR",
    "OUTTRADENOUSED": "OUT_TRADE_NO_USED",
    "MCHNOTEXISTS": "MCH_NOT_EXISTS",
    "INVALIDREQUEST": "INVALID_REQUEST",
    "RESOURCENOTEXISTS": "RESOURCE_NOT_EXISTS",
}
# 5xx codes that describe a bad request, not an outage: retrying the same parameters cannot help.
NON_RETRYABLE_5XX = frozenset({"OPENID_MISMATCH", "INVALID_TRANSACTIONID"})


def normalise_code(code: str) -> str:
    upper = code.strip().upper()
    return LEGACY_CODES.get(upper, upper)


def is_retryable_status(status: int, code: str) -> bool:
    return status == 429 or (status >= 500 and code not in NON_RETRYABLE_5XX)


def parse_error_body(status: int, body: bytes) -> tuple[str, str]:
    """(normalised code, message) from `{"code": …, "message": …}`; `HTTP_<status>` when unreadable."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str) and parsed["code"]:
        message = parsed.get("message")
        return normalise_code(parsed["code"]), message if isinstance(message, str) else ""
    return f"HTTP_{status}", ""


def error_for_status(status: int, body: bytes, *, request_id: str = "") -> DomainError:
    """A non-2xx answer as a domain error: unavailable when retryable (§12), else rejected."""
    code, provider_message = parse_error_body(status, body)
    metadata = {"provider_code": code, "http_status": str(status)}
    if request_id:
        metadata["request_id"] = request_id
    if is_retryable_status(status, code):
        return ProviderUnavailableError(f"WeChat Pay unavailable: HTTP {status} {code}", metadata=metadata)
    metadata["provider_message"] = provider_message
    return ProviderRejectedError(f"WeChat Pay rejected the request: {code}", metadata=metadata)


def unavailable(
    message: str, *, provider_code: str, http_status: int | None = None, **extra: str
) -> ProviderUnavailableError:
    metadata = {
        "provider_code": provider_code,
        "http_status": "" if http_status is None else str(http_status),
    }
    return ProviderUnavailableError(message, metadata={**metadata, **extra})


def json_object(status: int, body: bytes) -> dict[str, Any]:
    """A verified answer's JSON object ({} for an empty body); anything else is unusable, not an answer."""
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if not isinstance(parsed, dict):
        raise unavailable(
            "WeChat Pay sent a non-object body", provider_code="MALFORMED_RESPONSE", http_status=status
        )
    return parsed


def outcome_label(error: DomainError) -> str:
    """The failure's label in the provider-call metric."""
    if isinstance(error, ProviderRejectedError):
        return "rejected"
    if error.metadata.get("circuit") == "open":
        return "circuit_open"
    if error.metadata.get("provider_code") == "INVALID_RESPONSE_SIGNATURE":
        return "bad_signature"
    return "unavailable"
