"""Shared fixtures: the two database backends, an App per backend, random ids.

Isolation (tests/support/isolation.py): before any test runs, every ORDERPAY_* setting inherited from
the shell is dropped and every listener defaults to port 0, so the suite never meets what `make run`
left (.orderpay/keys, its database) or holds (50051, 8080, 8081, 8090, 9464).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.app import App
from server.bootstrap import build_app
from tests.support.databases import fresh_postgres, migrated_template, postgres_admin_url, sqlite_url
from tests.support.isolation import isolate_environment
from tests.support.settings import settings_for

isolate_environment()  # at import: before any fixture, test module or child process reads the environment

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    url = postgres_admin_url()
    if url is None:
        pytest.skip("PostgreSQL half skipped: set ORDERPAY_TEST_DATABASE_URL or run one on 127.0.0.1:5432")
    return url


@pytest.fixture(scope="session")
def postgres_template(postgres_admin: str) -> Iterator[str]:
    """One migrated database per test process; `database_url` copies it (tests/support/databases.py)."""
    with migrated_template(postgres_admin) as name:
        yield name


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path_factory.mktemp("sqlite"))
        return
    admin = request.getfixturevalue("postgres_admin")
    with fresh_postgres(admin, request.getfixturevalue("postgres_template")) as url:
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


# Long files first: `make test` runs on several workers (`--dist loadfile`, a file's tests on one worker,
# so its module fixtures start once), and a long file handed out last runs alone at the end. Drills and
# slow tests, then whole-stack directories. xdist would re-sort files by their number of tests (most
# first), which put the one-test drills last and left two workers idle for the last two minutes; so
# its re-sort is switched off (pytest_configure) and this order is the one the workers get.
LONG_FIRST_MARKS = ("drill", "slow")
LONG_FIRST_DIRS = ("e2e", "browser", "load", "interop", "recon")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist's --no-loadscope-reorder
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank: dict[str, int] = {}
    for item in items:
        file = str(item.path)
        marked = any(item.get_closest_marker(mark) for mark in LONG_FIRST_MARKS)
        in_dir = item.path.parent.name in LONG_FIRST_DIRS
        rank[file] = min(rank.get(file, 2), 0 if marked else 1 if in_dir else 2)
    first_seen = {str(item.path): i for i, item in reversed(list(enumerate(items)))}
    items.sort(key=lambda item: (rank[str(item.path)], first_seen[str(item.path)]))
