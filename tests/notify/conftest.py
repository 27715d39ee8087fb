"""Fixtures for the notify sidecar: a real App on SQLite/PostgreSQL with a test credentials bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.app import App
from server.bootstrap import build_app
from server.service.notifications import NotificationService
from tests.notify.fakes import FakeLedger, service_with
from tests.notify.rows import NotificationRows
from tests.support.settings import settings_for
from tests.support.wechat import WeChatNotifier, make_bundle


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


@pytest.fixture
def service(ledger: FakeLedger, bundle_dir: Path, notify_app: App) -> NotificationService:
    return service_with(notify_app.uow, ledger, bundle_dir, notify_app)
