"""Fixtures of the operations tests: a real App per backend with payments on a fake gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.app import App
from server.bootstrap import build_app
from server.jobs.wiring import wire_fulfilment
from server.service.payments import PaymentService
from server.service.ports import MerchantIdentity
from server.service.refunds import RefundService
from tests.conftest import settings_for
from tests.support.fake_gateway import FakeGateway


@pytest.fixture(scope="module")
def base_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    application = build_app(settings_for(database_url, credentials_dir=str(tmp_path_factory.mktemp("none"))))
    application.catalogue.load_file()
    yield application
    application.close()


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def app(base_app: App, gateway: FakeGateway) -> App:
    merchant = MerchantIdentity("1900000109", "wxapp")
    payments = PaymentService(base_app.uow, base_app.clock, gateway, merchant, "http://n/notify", (60.0,))
    refunds = RefundService(base_app.uow, base_app.clock, gateway, "http://n/notify", (60.0,))
    base_app.payments, base_app.refunds = payments, refunds
    base_app.extras.pop("fulfilment", None)
    wire_fulfilment(base_app)
    return base_app
