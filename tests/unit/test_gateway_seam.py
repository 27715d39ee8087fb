"""The service layer holds a gateway per merchant account: every call about an order goes to the
gateway of the account stored on the order (issue 18), never another's (no database: the in-memory
unit of work)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from orderpay.v1 import pay_service_pb2
from server.adapters.gateways import MerchantGateways
from server.domain.catalogue import ProductKind
from server.domain.order import Fulfilment, Order, OrderStatus
from server.domain.provider import PAY_CHANNELS, MerchantIdentity
from server.service.context import Caller
from server.service.handlers import Policy, transactional
from server.service.payments import PaymentService
from server.wxpay.channels import ENDPOINTS
from server.wxpay.gateway import WeChatPayGateway
from tests.support.fake_gateway import FakeGateway, FakeGateways
from tests.support.fake_uow import FakeDatabase

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SHOP = MerchantIdentity(merchant_id="1900000109", app_id="wxshop", account="shop")
BRAND = MerchantIdentity(merchant_id="1900000110", app_id="wxbrand", account="brand")
CALLER = Caller("user:u1", "t")


def clock() -> datetime:
    return NOW


def unpaid_order(account: str = "shop") -> Order:
    order_id = "ord_" + secrets.token_hex(6)
    return Order(
        order_id=order_id,
        out_trade_no="OP" + secrets.token_hex(8),
        user_id="u1",
        request_id="r-" + order_id,
        fingerprint="f",
        product_id="vip-month",
        kind=ProductKind.VIP_PLAN,
        quantity=1,
        total_fee=1800,
        description="VIP",
        attach="",
        article_id=None,
        status=OrderStatus.UNPAID,
        fulfilment=Fulfilment.PENDING,
        fulfilment_reason="",
        version=1,
        expires_at=NOW + timedelta(minutes=30),
        created_at=NOW,
        updated_at=NOW,
        account=account,
    )


def payments_for(merchant: MerchantIdentity, gateways: FakeGateways, db: FakeDatabase) -> PaymentService:
    uow = transactional(db.factory(), clock, Policy())
    return PaymentService(uow, clock, gateways, merchant, "http://n/notify", (60.0,))


@pytest.mark.parametrize(("acting", "other"), [(SHOP, BRAND), (BRAND, SHOP)])
def test_each_call_goes_to_the_gateway_of_the_orders_account(
    acting: MerchantIdentity, other: MerchantIdentity
) -> None:
    db, gateways = FakeDatabase(), FakeGateways(SHOP, BRAND)
    payments = payments_for(other, gateways, db)  # the service's default account is the other one
    order = unpaid_order(acting.account)
    db.state.orders[order.order_id] = order

    view = payments.create_payment(order.order_id, "NATIVE", None, None, CALLER)
    payments.sync_payment(order.order_id, CALLER)
    payments.close_at_provider(db.state.orders[order.order_id], CALLER)

    assert set(gateways.asked) - {other} == {acting}  # the default only validates the request
    mine, theirs = gateways.raw[acting], gateways.raw[other]
    assert [name for name, _ in mine.calls] == ["prepay", "query", "close"]
    assert theirs.calls == []
    assert view.pay.code_url.endswith(order.out_trade_no)  # the pay view came from that gateway too
    assert view.pay.expires_at == NOW + timedelta(hours=2)  # its validity, not the service's


def test_the_pay_view_is_the_gateways_and_a_reused_prepay_asks_nobody() -> None:
    db, gateways = FakeDatabase(), FakeGateways(SHOP)
    payments = payments_for(SHOP, gateways, db)
    order = unpaid_order()
    db.state.orders[order.order_id] = order

    first = payments.create_payment(order.order_id, "JSAPI", "openid-1", None, CALLER)
    again = payments.create_payment(order.order_id, "MINIPROGRAM", "openid-1", None, CALLER)

    assert gateways.raw[SHOP].count("prepay") == 1  # one family: the JSAPI prepay is reused
    assert first.pay.params["package"] == f"prepay_id={first.pay.prepay_id}"
    assert (again.pay.prepay_id, again.channel) == (first.pay.prepay_id, "JSAPI")


def test_wechat_has_an_endpoint_for_every_channel_the_api_offers() -> None:
    names = pay_service_pb2.PayChannel.keys()
    offered = {name.removeprefix("PAY_CHANNEL_") for name in names}
    assert set(PAY_CHANNELS) == offered - {"UNSPECIFIED"}
    assert set(ENDPOINTS) == set(PAY_CHANNELS)
    gateway = WeChatPayGateway(FakeGateway())
    assert all(gateway.channel(name) is not None for name in PAY_CHANNELS)
    assert gateway.channel("UNSPECIFIED") is None
    assert gateway.channel("jsapi") is None  # our names are exact; the endpoint is WeChat's


def test_the_composition_roots_gateways_never_lend_a_merchants_keys_to_another() -> None:
    shop = WeChatPayGateway(FakeGateway(SHOP.merchant_id, SHOP.app_id))
    gateways = MerchantGateways.single(SHOP, shop)
    assert gateways.gateway_for(SHOP) is shop
    assert gateways.merchants == (SHOP,)
    with pytest.raises(LookupError, match=BRAND.merchant_id):
        gateways.gateway_for(BRAND)
    with pytest.raises(ValueError, match="at least one"):
        MerchantGateways({})
