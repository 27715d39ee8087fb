"""What applying the provider's word did: one enum for payments, refunds and notifications."""

from __future__ import annotations

from enum import StrEnum


class ApplyOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # already applied: nothing written
    AMOUNT_MISMATCH = "amount_mismatch"  # recorded and HELD
    PAID_AFTER_CLOSE = "paid_after_close"  # recorded, HELD, refunded
    IDENTITY_MISMATCH = "identity_mismatch"  # another merchant's or app's transaction
    UNKNOWN_ORDER = "unknown_order"
    NOT_SUCCESS = "not_success"  # not a final state worth recording
    REFUND_UNKNOWN = "refund_unknown"
    REFUND_MISMATCH = "refund_mismatch"  # another merchant's, order's or amount's refund: never credited
    REFUND_ABNORMAL = "refund_abnormal"  # the money did not reach the payer: an operator must act

    @property
    def alarming(self) -> bool:
        """Acknowledged, but a person should look."""
        return self in _ALARMING


class NotificationOutcome(StrEnum):
    """A notification's outcome when the apply gave none (ApplyOutcome) and no check rejected it."""

    UNHANDLED_EVENT = "unhandled_event"  # an event type we do not handle: acknowledged, ignored
    DUPLICATE = ApplyOutcome.DUPLICATE.value  # this notification id was processed before
    TRANSIENT = "transient"  # could not decide now (database busy): WeChat sends it again
    ERROR = "error"  # a bug: kept FAILED for the re-processing job
    INVALID_RESOURCE = "invalid_resource"  # signed, but the resource itself was refused


_ALARMING = frozenset(
    {
        ApplyOutcome.UNKNOWN_ORDER,
        ApplyOutcome.IDENTITY_MISMATCH,
        ApplyOutcome.AMOUNT_MISMATCH,
        ApplyOutcome.REFUND_UNKNOWN,
        ApplyOutcome.REFUND_MISMATCH,
        ApplyOutcome.REFUND_ABNORMAL,
        ApplyOutcome.PAID_AFTER_CLOSE,
    }
)
