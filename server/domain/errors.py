"""The one error hierarchy. Every failure a caller can act on has a stable UPPER_SNAKE `reason`.

Entrypoints translate these (gRPC: `server.rpc.status`); nothing here knows about transports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """Root of every expected failure. `reason` is part of the API contract."""

    reason: str = "INTERNAL"

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgumentError(DomainError):
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation]) -> None:
        text = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {text}")
        self.violations = violations


class UnauthenticatedError(DomainError):
    reason = "UNAUTHENTICATED"


class PermissionDeniedError(DomainError):
    reason = "PERMISSION_DENIED"


class OrderNotFoundError(DomainError):
    reason = "ORDER_NOT_FOUND"


class ProductNotFoundError(DomainError):
    reason = "PRODUCT_NOT_FOUND"


class RefundNotFoundError(DomainError):
    reason = "REFUND_NOT_FOUND"


class ReconExceptionNotFoundError(DomainError):
    reason = "RECON_EXCEPTION_NOT_FOUND"


class IdempotencyKeyReusedError(DomainError):
    reason = "IDEMPOTENCY_KEY_REUSED"


class UnpaidOrderExistsError(DomainError):
    reason = "UNPAID_ORDER_EXISTS"


class OutOfStockError(DomainError):
    reason = "OUT_OF_STOCK"


class InvalidStateTransitionError(DomainError):
    reason = "INVALID_STATE_TRANSITION"


class OrderNotPayableError(DomainError):
    reason = "ORDER_NOT_PAYABLE"


class RefundExceedsPaidError(DomainError):
    reason = "REFUND_EXCEEDS_PAID"


class ProviderRejectedError(DomainError):
    """WeChat Pay refused the request for a business reason; its code is in metadata["provider_code"]."""

    reason = "PROVIDER_REJECTED"


class VersionConflictError(DomainError):
    """A compare-and-set on `version` lost; metadata["current_version"] says what won, when known."""

    reason = "VERSION_CONFLICT"


class ProviderUnavailableError(DomainError):
    """Timeout, 5xx, 429 or an open circuit: safe to retry later with the same parameters."""

    reason = "PROVIDER_UNAVAILABLE"


class OverloadedError(DomainError):
    reason = "OVERLOADED"


# --- issue 19: the event feed and fulfilment by the business ------------------------------------
class SubscriberNotFoundError(DomainError):
    reason = "SUBSCRIBER_NOT_FOUND"


class PositionInFutureError(InvalidArgumentError):
    """A feed position past the head: nothing has been written there yet."""

    reason = "POSITION_IN_FUTURE"


class UnknownEventTypeError(InvalidArgumentError):
    reason = "UNKNOWN_EVENT_TYPE"


class FulfilmentAlreadyDecidedError(DomainError):
    """Confirmed or failed twice, or too late: the order's fulfilment is already decided."""

    reason = "FULFILMENT_ALREADY_DECIDED"


class NotExternalFulfilmentError(DomainError):
    """Only orders of kind EXTERNAL are fulfilled by the business."""

    reason = "NOT_EXTERNAL_FULFILMENT"


# --- issue 19 item 4: signed webhooks -----------------------------------------------------------
class WebhookUrlRefusedError(InvalidArgumentError):
    """Not an http(s) URL, or plain http in production to a host that is not loopback."""

    reason = "WEBHOOK_URL_REFUSED"


class WebhookNotFoundError(DomainError):
    """The subscriber has no webhook (register it with a webhook_url first)."""

    reason = "WEBHOOK_NOT_FOUND"
