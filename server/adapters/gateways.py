"""The payment gateway of each merchant we act for (server.service.ports.Gateways).

Built once by the composition root. Today the credentials bundle holds one merchant, so this holds one
gateway; asking for any other merchant is a wiring mistake, never a reason to use someone else's keys.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.domain.provider import MerchantIdentity
from server.service.ports import PaymentGateway


class MerchantGateways:
    def __init__(self, gateways: Mapping[MerchantIdentity, PaymentGateway]) -> None:
        if not gateways:
            raise ValueError("MerchantGateways needs at least one merchant")
        self._gateways = dict(gateways)

    @classmethod
    def single(cls, merchant: MerchantIdentity, gateway: PaymentGateway) -> MerchantGateways:
        return cls({merchant: gateway})

    def gateway_for(self, merchant: MerchantIdentity) -> PaymentGateway:
        gateway = self._gateways.get(merchant)
        if gateway is None:
            raise LookupError(f"no payment gateway for merchant {merchant.merchant_id} app {merchant.app_id}")
        return gateway

    @property
    def merchants(self) -> tuple[MerchantIdentity, ...]:
        return tuple(self._gateways)

    def shutdown(self) -> None:
        """Close every gateway's pooled connections (App.close)."""
        for gateway in self._gateways.values():
            shutdown = getattr(gateway, "shutdown", None)
            if shutdown is not None:
                shutdown()
