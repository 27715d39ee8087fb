"""Fixtures for the notify sidecar: a real App on SQLite/PostgreSQL with a test credentials bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.adapters.faults import TRANSIENT_DATABASE_ERRORS
from server.app import App
from server.bootstrap import build_app
from server.service.notifications import NotificationService
from server.service.ports import UnitOfWorkFactory
from server.wxpay.credentials import load_credentials
from server.wxpay.notification import notification_parser
from tests.conftest import settings_for
from tests.notify.fakes import FakeLedger
from tests.notify.rows import NotificationRows
from tests.notify.wechat import WeChatNotifier, make_bundle

MAX_SKEW_S = 300


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def notify_app(database_url: str, bundle_dir: Path) -> Iterator[App]:
    application = build_app(settings_for(database_url, credentials_dir=str(bundle_dir)))
    application.catalogue.load_file()
    yield application
    application.close()


@pytest.fixture(scope="session")
def notifier() -> WeChatNotifier:
    return WeChatNotifier()


@pytest.fixture
def store(notify_app: App) -> NotificationRows:
    return NotificationRows(notify_app.db, notify_app.uow)


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger()


def service_with(
    uow: UnitOfWorkFactory, ledger: FakeLedger, bundle_dir: Path, app: App
) -> NotificationService:
    """The real service over `uow`, with the fake ledger in place of the payment and refund services."""
    credentials = load_credentials(bundle_dir)
    return NotificationService(
        uow=uow,
        clock=app.clock,
        parse=notification_parser(credentials, credentials.verifier_keys(), MAX_SKEW_S),
        payments=ledger,
        refunds=ledger,
        transient_faults=TRANSIENT_DATABASE_ERRORS,
    )


@pytest.fixture
def service(ledger: FakeLedger, bundle_dir: Path, notify_app: App) -> NotificationService:
    return service_with(notify_app.uow, ledger, bundle_dir, notify_app)
