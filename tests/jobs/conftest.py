"""A real App per backend with payments wired (credentials bundle; WeChat Pay unreachable) and a clock
the tests move, so backoff schedules and expiry run without sleeping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.app import App
from server.bootstrap import build_app
from tests.jobs.helpers import MovableClock
from tests.support.settings import settings_for
from tests.support.wechat import make_bundle

# Nothing listens on port 9 (discard): every WeChat Pay call fails fast as PROVIDER_UNAVAILABLE.
UNREACHABLE_GATEWAY = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(scope="module")
def jobs_app(
    database_url: str, clock: MovableClock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[App]:
    bundle = make_bundle(tmp_path_factory.mktemp("keys"))
    settings = settings_for(
        database_url,
        credentials_dir=str(bundle),
        wxpay_base_url=UNREACHABLE_GATEWAY,
        wxpay_max_attempts=1,
        wxpay_connect_timeout_s=0.5,
        job_interval_s=0.05,
    )
    # These tests drive the worker themselves: no prompt fulfilment on payment.
    application = build_app(settings, clock=clock, prompt_fulfilment=False)
    application.catalogue.load_file()
    yield application
    application.close()
