"""Fixtures of the operations tests: the real composition root per backend, a fake in place of WeChat Pay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.app import App
from server.bootstrap import build_app
from server.wxpay.gateway import WeChatPayGateway
from tests.support.fake_gateway import FakeGateway
from tests.support.settings import settings_for
from tests.support.wechat import FACTS, make_bundle


@pytest.fixture(scope="module")
def module_gateway() -> FakeGateway:
    return FakeGateway(FACTS["mchid"], FACTS["appid"])


@pytest.fixture(scope="module")
def base_app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, module_gateway: FakeGateway
) -> Iterator[App]:
    settings = settings_for(
        database_url,
        credentials_dir=str(make_bundle(tmp_path_factory.mktemp("keys"))),
        reconcile_schedule_s=(60.0,),
        refund_poll_schedule_s=(60.0,),
    )
    application = build_app(settings, gateway=WeChatPayGateway(module_gateway))
    application.catalogue.load_file()
    yield application
    application.close()


@pytest.fixture
def gateway(module_gateway: FakeGateway) -> FakeGateway:
    module_gateway.calls.clear()
    module_gateway.fail_next.clear()
    return module_gateway


@pytest.fixture
def app(base_app: App, gateway: FakeGateway) -> App:
    del gateway  # cleared for this test
    return base_app
