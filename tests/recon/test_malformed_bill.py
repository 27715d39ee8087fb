"""The 2026-12 audit's M1: one malformed bill must not stop reconciliation, crash-loop against WeChat,
or print a traceback. A malformed day is stored as `BILL_MALFORMED` with its line and column, backs
off like an unavailable provider, raises one alarm, and the other days go on.

Through the real CLI (`orderpay recon run` / `recon show`, subprocesses) and the real job
(`ReconTask` over the composition root's reconciliation service), against a loopback bill gateway
that serves the chosen files with signed apply answers.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sandbox.keys.bundle import init_bundle
from server.bootstrap import build_app
from server.domain.reconciliation import BEIJING
from server.jobs.recon_task import ReconTask
from tests.support.bill_gateway import BillGateway, trade_bill, trade_row
from tests.support.settings import settings_for
from tests.support.stack import ROOT


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bill-keys")
    init_bundle(directory)
    return directory


@pytest.fixture
def gateway(keys: Path) -> Iterator[BillGateway]:
    running = BillGateway(keys)
    running.start()
    yield running
    running.stop()


def _a_day() -> date:
    """A past day of its own per test: the module's database is shared."""
    return date(2024, 1, 1) + timedelta(days=random.randrange(700))


def _recon(
    database_url: str, keys: Path, gateway: BillGateway, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ORDERPAY_DATABASE_URL": database_url,
        "ORDERPAY_CREDENTIALS_DIR": str(keys),
        "ORDERPAY_WXPAY_BASE_URL": gateway.base_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", "recon", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("amount", "column"),
    [
        ("abc", "订单金额"),
        ("NaN", "订单金额"),
        ("1e999999", "订单金额"),
        ("", "订单金额"),
        ("-18.00", "订单金额"),
    ],
)
def test_recon_run_on_a_malformed_bill_is_one_line_exit_2_and_a_stored_outcome(
    database_url: str, keys: Path, gateway: BillGateway, amount: str, column: str
) -> None:
    day = _a_day()
    gateway.trade[day] = trade_bill(
        trade_row(day, "OP" + os.urandom(6).hex(), "18.00"), trade_row(day, "OPbad1", amount)
    )

    done = _recon(database_url, keys, gateway, "run", "--date", day.isoformat())

    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line
    assert "Traceback" not in done.stderr
    assert "BILL_MALFORMED" in line
    assert "line 3" in line
    assert column in line
    shown = _recon(database_url, keys, gateway, "show", "--date", day.isoformat())
    assert "BILL_MALFORMED" in shown.stdout
    assert "line 3" in shown.stdout
    assert column in shown.stdout


def test_a_row_with_a_wrong_field_count_or_a_bad_time_is_malformed(
    database_url: str, keys: Path, gateway: BillGateway
) -> None:
    for row, where in (("`2024-01-01 12:00:00,`x", "line 2"), (None, "交易时间")):
        day = _a_day()
        bad = row if row is not None else trade_row(day, "OPtime", "18.00", time_of_day="25:61:00")
        gateway.trade[day] = trade_bill(bad)
        done = _recon(database_url, keys, gateway, "run", "--date", day.isoformat())
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert "BILL_MALFORMED" in done.stderr
        assert where in done.stderr


def test_the_job_stores_the_malformed_day_alarms_once_backs_off_and_goes_on_with_the_others(
    database_url: str, keys: Path, gateway: BillGateway
) -> None:
    yesterday = _a_day()
    days = [yesterday - timedelta(days=n) for n in (3, 2, 1, 0)]
    bad_day = days[1]
    for day in days:
        gateway.trade[day] = trade_bill(trade_row(day, "OP" + os.urandom(6).hex(), "18.00"))
    gateway.trade[bad_day] = trade_bill(trade_row(bad_day, "OPbad1", "Infinity"))
    now = datetime.combine(yesterday + timedelta(days=1), time(11, 0), tzinfo=BEIJING).astimezone(UTC)
    clock = [now]
    settings = settings_for(database_url, credentials_dir=str(keys), wxpay_base_url=gateway.base_url)
    app = build_app(settings, clock=lambda: clock[0], prompt_fulfilment=False)
    try:
        assert app.payments is not None
        task = ReconTask(app.payments.reconciliation, lambda: clock[0])
        with capture_logs() as logs:
            first = task.run_once()
            clock[0] = now + timedelta(seconds=1)
            second = task.run_once()  # a second later: nothing is asked again
            clock[0] = now + timedelta(hours=1)
            third = task.run_once()  # after the back-off: asked once more, still malformed
        service = app.payments.reconciliation
        statuses = {day: service.report(day).summary.status for day in days}
    finally:
        app.close()

    assert statuses == {day: "BILL_MALFORMED" if day == bad_day else "DONE" for day in days}
    assert (first.errors, second.items, third.errors) == (1, 0, 1)
    assert gateway.applies[f"trade {bad_day}"] == 2
    alarms = [entry for entry in logs if entry["event"] == "recon.bill_malformed"]
    assert len(alarms) == 1
    assert alarms[0]["log_level"] == "error"
    assert "line 2" in alarms[0]["error"]
    assert "订单金额" in alarms[0]["error"]
    assert not [entry for entry in logs if entry["event"] == "job.crashed"]


def test_recon_resolve_refuses_a_reason_with_control_characters(
    database_url: str, keys: Path, gateway: BillGateway
) -> None:
    """The audit's L6: recon reasons were only checked for non-empty and echoed raw."""
    done = _recon(database_url, keys, gateway, "resolve", "1", "--reason", "ok\x1b[2J\x1b[31mFAKE")
    assert done.returncode == 2
    assert "reason" in done.stderr
    assert "\x1b" not in done.stdout + done.stderr
