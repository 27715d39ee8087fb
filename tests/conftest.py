"""Shared fixtures: the two database backends, an App per backend, random ids."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.app import App
from server.bootstrap import build_app
from tests.support.databases import fresh_postgres, postgres_admin_url, sqlite_url
from tests.support.settings import settings_for

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    url = postgres_admin_url()
    if url is None:
        pytest.skip("PostgreSQL half skipped: set ORDERPAY_TEST_DATABASE_URL or run one on 127.0.0.1:5432")
    return url


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path_factory.mktemp("sqlite"))
        return
    admin = request.getfixturevalue("postgres_admin")
    with fresh_postgres(admin) as url:
        yield url


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[App]:
    application = build_app(settings_for(database_url), payments_required=False)
    application.catalogue.load_file()
    yield application
    application.close()


@pytest.fixture
def rid() -> str:
    """A random id per test, so tests never collide on shared state."""
    return secrets.token_hex(6)


def tmp_catalogue(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalogue.json"
    path.write_text(text, encoding="utf-8")
    return path
