"""The payment provider and the reactions to its decisions: gateways, announcers, appliers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from server.domain.notification import Notification
from server.domain.outcomes import ApplyOutcome
from server.domain.provider import (
    AbnormalRefundRequest,
    ChannelRules,
    CloseOutcome,
    MerchantIdentity,
    PayView,
    Prepay,
    PrepayRequest,
    RefundReport,
    RefundRequest,
    TransactionReport,
)
from server.service.ports.unit_of_work import UnitOfWork


class DecisionAnnouncer(Protocol):
    """Tells whoever waits on an order that its fulfilment was decided (after the commit)."""

    def publish(self, order_id: str) -> None: ...


class FeedAnnouncer(Protocol):
    """Tells this process's event-feed Watch streams that the log grew (after the commit)."""

    def publish(self, position: int) -> None: ...


class Fulfiller(Protocol):
    """Fulfil one paid order now (its transactions publish their own events)."""

    def fulfil(self, order_id: str) -> None: ...


class HasOutcome(Protocol):
    @property
    def outcome(self) -> ApplyOutcome: ...


class TransactionApplier(Protocol):
    """PaymentService as the notification path needs it: apply inside the caller's transaction."""

    def apply_in(
        self, uow: UnitOfWork, report: TransactionReport, *, source: str, account: str | None = None
    ) -> HasOutcome: ...


class RefundApplier(Protocol):
    def apply_in(
        self, uow: UnitOfWork, report: RefundReport, *, source: str, account: str | None = None
    ) -> HasOutcome: ...


class PaymentGateway(Protocol):
    """One merchant's payment provider in our terms (server.wxpay.gateway.WeChatPayGateway is WeChat Pay's).

    Failures: ProviderRejectedError (a business "no" not covered by a typed answer) or
    ProviderUnavailableError (maybe done, maybe not: ask again with the same number).
    """

    def channel(self, name: str) -> ChannelRules | None:
        """What paying on channel `name` needs; None: the provider has no such channel."""
        ...

    def prepay(self, request: PrepayRequest) -> Prepay: ...
    def pay_view(self, channel: str, prepay: Prepay, at: datetime) -> PayView:
        """How a client pays `prepay`, made at `at` on `channel`, and until when."""
        ...

    def query_transaction(self, out_trade_no: str) -> TransactionReport | None:
        """None: the provider never saw the order."""
        ...

    def close(self, out_trade_no: str) -> CloseOutcome: ...
    def refund(self, request: RefundRequest) -> RefundReport: ...
    def query_refund(self, out_refund_no: str) -> RefundReport: ...
    def apply_abnormal_refund(self, request: AbnormalRefundRequest) -> RefundReport: ...


class Gateways(Protocol):
    """The payment gateway of each merchant we act for (server.adapters.gateways.MerchantGateways)."""

    def gateway_for(self, merchant: MerchantIdentity) -> PaymentGateway: ...
    def identity(self, account: str) -> MerchantIdentity:
        """The merchant of the account an order is stored under (issue 18)."""
        ...

    def for_account(self, account: str) -> PaymentGateway:
        """That account's gateway: every call about an order goes out under the order's account."""
        ...


# Verifies and decrypts a signed notification (headers, raw body, now as unix seconds), or raises
# a server.domain.notification.NotificationRejected: the provider adapter supplies it.
NotificationParser = Callable[[Mapping[str, str], bytes, float], Notification]
