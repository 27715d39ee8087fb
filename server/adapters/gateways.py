"""The payment gateway of each merchant account we act for (server.service.ports.Gateways).

Built once by the composition root: one gateway per configured account (issue 18: direct merchants,
providers, and each provider's sub-merchants). Asking for an account that is not configured is refused,
never answered with someone else's keys.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.domain.errors import ProviderUnavailableError
from server.domain.provider import MerchantIdentity
from server.service.ports import PaymentGateway


class MerchantGateways:
    def __init__(self, gateways: Mapping[MerchantIdentity, PaymentGateway]) -> None:
        if not gateways:
            raise ValueError("MerchantGateways needs at least one merchant")
        self._gateways = dict(gateways)
        self._by_account = {merchant.account: merchant for merchant in self._gateways}

    @classmethod
    def single(cls, merchant: MerchantIdentity, gateway: PaymentGateway) -> MerchantGateways:
        return cls({merchant: gateway})

    def gateway_for(self, merchant: MerchantIdentity) -> PaymentGateway:
        gateway = self._gateways.get(merchant)
        if gateway is None:
            raise LookupError(f"no payment gateway for merchant {merchant.merchant_id} app {merchant.app_id}")
        return gateway

    def identity(self, account: str) -> MerchantIdentity:
        """The merchant an order stored under `account` is paid to. An account no longer configured
        stops the call (the operator restores its directory), it never falls back to another."""
        merchant = self._by_account.get(account)
        if merchant is None:
            raise ProviderUnavailableError(
                f"merchant account {account!r} is not configured",
                metadata={"provider_code": "ACCOUNT_NOT_CONFIGURED", "account": account},
            )
        return merchant

    def for_account(self, account: str) -> PaymentGateway:
        return self._gateways[self.identity(account)]

    @property
    def merchants(self) -> tuple[MerchantIdentity, ...]:
        return tuple(self._gateways)

    def shutdown(self) -> None:
        """Close every gateway's pooled connections (App.close)."""
        for gateway in self._gateways.values():
            shutdown = getattr(gateway, "shutdown", None)
            if shutdown is not None:
                shutdown()
