"""Reconciliation fixtures: per test, a fresh sandbox whose clock starts on a day of its own, and the
payment, refund and reconciliation services of a per-module App (SQLite and PostgreSQL) wired to it.

orderpay's clock follows the sandbox's, one second behind: what makes a refund written at 23:59:59.5
reach WeChat at 00:00:00.5, the day-cut crossing the tests need.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.app import RunningSandbox, RunningServer, make_app, serve_in_thread
from sandbox.config import Faults, SandboxConfig
from sandbox.engine.clock import SandboxClock
from sandbox.keys.bundle import init_bundle, load_credentials
from sandbox.testing import MerchantCaller
from server.adapters.recon_store import PeeweeReconStore
from server.app import App
from server.bootstrap import build_app
from server.domain.reconciliation import BEIJING
from tests.support.recon_world import FollowingClock, World
from tests.support.settings import settings_for

_DAYS = itertools.count(1)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("recon-keys")
    init_bundle(directory)
    return directory


@pytest.fixture(scope="module")
def clock() -> FollowingClock:
    return FollowingClock()


@pytest.fixture(scope="module")
def recon_database(database_url: str) -> str:
    return database_url


@pytest.fixture
def make_world(recon_database: str, keys: Path, clock: FollowingClock) -> Iterator[Callable[..., World]]:
    started: list[tuple[RunningServer, App]] = []
    callers: list[MerchantCaller] = []

    def make(hh: int = 12, mm: int = 0, **sandbox_settings: Any) -> World:
        # Each world starts on a Beijing day no other test of the module uses.
        day = datetime.now(UTC).astimezone(BEIJING).date() + timedelta(days=3 * next(_DAYS))
        sandbox_clock = SandboxClock(start=datetime.combine(day, time(hh, mm), tzinfo=BEIJING))
        config = SandboxConfig(
            credentials=load_credentials(keys),
            time_scale=0.001,
            faults=Faults(notify_drop_rate=1.0),  # no notifications: orderpay learns by querying
            **sandbox_settings,
        )
        server = serve_in_thread(make_app(config, sandbox_clock))
        clock.target = sandbox_clock
        # The whole composition root, pointed at this world's sandbox (prompt fulfilment off: no jobs run).
        settings = settings_for(
            recon_database,
            credentials_dir=str(keys),
            wxpay_base_url=server.base_url,
            notify_url="http://127.0.0.1:9/notify",
        )
        app = build_app(settings, clock=clock, prompt_fulfilment=False)
        app.catalogue.load_file()
        started.append((server, app))
        part = app.payments
        assert part is not None
        merchant_caller = MerchantCaller(server.base_url, load_credentials(keys))
        callers.append(merchant_caller)
        return World(
            app,
            RunningSandbox(server),
            sandbox_clock,
            part.payments,
            part.refunds,
            part.reconciliation,
            PeeweeReconStore(),
            day,
            merchant_caller,
        )

    yield make
    for caller in callers:
        caller.close()
    for server, app in started:
        app.close()
        server.stop()
