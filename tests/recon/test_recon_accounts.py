"""Reconciliation per merchant account (issue 18 §5), end to end against the sandbox playing two direct
merchants and a provider with two sub-merchants, on SQLite and PostgreSQL.

Each account's trade and fund-flow bills are downloaded for that account (a sub-merchant's by its
provider, with `sub_mchid`; its fund flow encrypted) and matched against that account's orders only:
another account's order of the same `out_trade_no` at WeChat is never taken for ours. One account's
bill failing leaves the others reconciled; every exception carries its account.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.app import RunningServer, make_app, serve_in_thread
from sandbox.config import Faults, SandboxConfig
from sandbox.engine.clock import SandboxClock
from sandbox.keys.accounts import AccountSpec, init_accounts, load_accounts
from sandbox.testing import MerchantCaller
from server.adapters.recon_store import PeeweeReconStore
from server.app import App
from server.bootstrap import build_app
from server.domain.errors import ProviderUnavailableError
from server.domain.order import CreateOrder, Order
from server.domain.reconciliation import BEIJING, ExceptionKind, ExceptionStatus
from server.metrics import REGISTRY
from server.service.context import Caller
from server.service.recon_ports import DayReport
from tests.support.recon_world import FollowingClock
from tests.support.settings import settings_for
from tests.support.stack import ROOT

BFF = Caller("bff", "t")
_DAYS = itertools.count(1)


@pytest.fixture(scope="module")
def account_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("recon-accounts") / "keys"
    init_accounts(directory)
    return directory


@dataclass
class Accounts:
    """orderpay (every account configured) beside a sandbox that plays every account."""

    app: App
    sandbox_url: str
    clock: SandboxClock
    day: date
    specs: dict[str, AccountSpec]

    def control(self, method: str, path: str, body: Any = None) -> Any:
        answer = httpx.request(method, f"{self.sandbox_url}/sandbox/v1/{path}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def book(self, account: str) -> str:
        """The control API's query naming the account's book."""
        spec = self.specs[account]
        if spec.kind == "sub_merchant":
            return f"mchid={self.specs[spec.provider or ''].mchid}&sub_mchid={spec.mchid}"
        return f"mchid={spec.mchid}"

    def paid(self, account: str) -> Order:
        part = self.app.payments
        assert part is not None
        cmd = CreateOrder(secrets.token_hex(8), "u" + secrets.token_hex(6), "vip-month", 1, merchant=account)
        order = self.app.orders.create_order(cmd, BFF).order
        assert order.account == account
        part.payments.create_payment(order.order_id, "NATIVE", None, None, BFF)
        self.control("POST", f"orders/{order.out_trade_no}/pay?{self.book(account)}")
        synced = part.payments.sync_payment(order.order_id, BFF)
        assert synced.transaction_id
        return synced

    def open_bills(self) -> None:
        self.clock.set(datetime.combine(self.day + timedelta(days=1), time(10, 0, 1), tzinfo=BEIJING))


@pytest.fixture
def make_accounts(
    recon_database: str, account_keys: Path, clock: FollowingClock
) -> Iterator[Callable[[], Accounts]]:
    started: list[tuple[RunningServer, App]] = []

    def make() -> Accounts:
        day = datetime.now(UTC).astimezone(BEIJING).date() + timedelta(days=3 * next(_DAYS) + 400)
        sandbox_clock = SandboxClock(start=datetime.combine(day, time(12), tzinfo=BEIJING))
        specs = load_accounts(account_keys)
        primary = next(s.credentials for s in specs if s.credentials is not None)
        config = SandboxConfig(
            credentials=primary, accounts=tuple(specs), time_scale=0.001, faults=Faults(notify_drop_rate=1.0)
        )
        server = serve_in_thread(make_app(config, sandbox_clock))
        clock.target = sandbox_clock
        settings = settings_for(
            recon_database,
            credentials_dir=str(account_keys),
            wxpay_base_url=server.base_url,
            notify_url="http://127.0.0.1:9/notify",
        )
        app = build_app(settings, clock=clock, prompt_fulfilment=False)
        app.catalogue.load_file()
        started.append((server, app))
        return Accounts(app, server.base_url, sandbox_clock, day, {s.name: s for s in specs})

    yield make
    for server, app in started:
        app.close()
        server.stop()


def kinds(report: DayReport) -> list[tuple[str, str, str]]:
    return sorted((e.account, e.kind.value, e.out_trade_no) for e in report.exceptions)


def test_each_account_is_reconciled_against_its_own_bill_even_when_order_numbers_collide(
    make_accounts: Callable[[], Accounts],
) -> None:
    world = make_accounts()
    recon = world.app.payments.reconciliation  # type: ignore[union-attr]
    mine = world.paid("direct-pk")
    theirs = world.paid("direct-cert")
    sub = world.paid("sp-sub-a")
    # direct-cert, at WeChat and not through orderpay, takes a payment under direct-pk's order number:
    # its bill then names that number too, and it must not match direct-pk's order.
    other = world.specs["direct-cert"]
    assert other.credentials is not None
    caller = MerchantCaller(world.sandbox_url, other.credentials)
    body = {
        "appid": other.apps["native"], "mchid": other.mchid, "description": "same number",
        "out_trade_no": mine.out_trade_no, "notify_url": "https://example.invalid/notify",
        "amount": {"total": 777, "currency": "CNY"},
    }  # fmt: skip
    assert caller.call("POST", "/v3/pay/transactions/native", body).status == 200
    caller.close()
    world.control("POST", f"orders/{mine.out_trade_no}/pay?mchid={other.mchid}")

    world.open_bills()
    report = recon.run_day(world.day)

    by_account = {part.account: part for part in report.parts}
    assert set(by_account) == {"direct-pk", "direct-cert", "sp", "sp-sub-a", "sp-sub-b"}
    pk, cert, sub_a = by_account["direct-pk"], by_account["direct-cert"], by_account["sp-sub-a"]
    assert (pk.summary.status, pk.summary.bill_rows, pk.summary.matched, pk.exceptions) == ("DONE", 1, 1, [])
    assert (sub_a.summary.status, sub_a.summary.bill_rows, sub_a.exceptions) == ("DONE", 1, [])
    # The sub-merchant's fund flow came through its provider, decrypted, and agrees with its trades.
    assert sub_a.summary.totals.fund_income_fen == sub_a.summary.totals.payments_fen == sub.paid_fee
    assert (
        by_account["sp"].summary.bill_rows == 0
    )  # the provider's own bill: its sub-merchants' rows are theirs
    assert by_account["sp-sub-b"].summary.status == "EMPTY"
    assert (cert.summary.bill_rows, cert.summary.matched) == (2, 1)
    (foreign,) = cert.exceptions
    assert (foreign.account, foreign.kind, foreign.out_trade_no) == (
        "direct-cert", ExceptionKind.MISSING_LOCAL, mine.out_trade_no,
    )  # fmt: skip
    assert (foreign.remote_fen, foreign.detail) == (777, "no such order")  # never repaired from ours
    assert theirs.transaction_id
    assert kinds(report) == [("direct-cert", "MISSING_LOCAL", mine.out_trade_no)]
    # The gauges carry the configured accounts, each with its own count.
    gauge = "orderpay_recon_exceptions"
    assert REGISTRY.get_sample_value(gauge, {"account": "direct-cert", "kind": "MISSING_LOCAL"}) >= 1
    assert REGISTRY.get_sample_value(gauge, {"account": "sp-sub-b", "kind": "MISSING_LOCAL"}) == 0
    assert REGISTRY.get_sample_value("orderpay_recon_last_reconciled_day", {"account": "sp-sub-a"})
    # The sub-merchant's bills were the provider's calls: counted under the account that signed them.
    calls = {"account": "sp", "operation": "sub_fundflow_bill", "outcome": "ok"}
    assert (REGISTRY.get_sample_value("orderpay_provider_calls_total", calls) or 0) >= 1


def test_recon_show_filters_by_account_and_names_it(
    make_accounts: Callable[[], Accounts], recon_database: str, account_keys: Path
) -> None:
    world = make_accounts()
    recon = world.app.payments.reconciliation  # type: ignore[union-attr]
    off = world.paid("direct-cert")
    world.paid("sp-sub-b")
    world.control(
        "POST", f"orders/{off.out_trade_no}/faults?{world.book('direct-cert')}", {"bill_omit": True}
    )
    world.open_bills()
    recon.run_day(world.day)
    env = {
        **os.environ,
        "ORDERPAY_DATABASE_URL": recon_database,
        "ORDERPAY_CREDENTIALS_DIR": str(account_keys),
        "ORDERPAY_WXPAY_BASE_URL": world.sandbox_url,
    }

    def show(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clients.cli", "recon", "show", "--date", world.day.isoformat(), *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    one = show("--account", "sp-sub-b", "--json")
    assert one.returncode == 0, one.stderr
    data = json.loads(one.stdout)
    assert (data["account"], data["status"], data["bill_rows"], data["exceptions"]) == (
        "sp-sub-b",
        "DONE",
        1,
        [],
    )
    every = show()
    assert every.returncode == 3  # direct-cert's exception is open
    text = every.stdout
    for account in ("direct-pk", "direct-cert", "sp", "sp-sub-a", "sp-sub-b"):
        assert f"· account {account}" in text
    assert "every account" in text.splitlines()[0]
    cert_part = text.split("· account direct-cert")[1].split("· account")[0]
    assert "MISSING_REMOTE" in cert_part
    assert off.out_trade_no in cert_part
    unknown = show("--account", "nobody")
    assert unknown.returncode == 2
    assert "nobody" in unknown.stderr


def test_one_accounts_bad_bill_leaves_the_others_reconciled_and_exceptions_name_their_account(
    make_accounts: Callable[[], Accounts],
) -> None:
    world = make_accounts()
    recon = world.app.payments.reconciliation  # type: ignore[union-attr]
    world.paid("direct-pk")
    world.paid("direct-cert")
    off = world.paid("sp-sub-a")
    world.control(
        "POST", f"orders/{off.out_trade_no}/faults?{world.book('sp-sub-a')}", {"bill_amount_delta_fen": 5}
    )
    world.control("PUT", f"config?{world.book('direct-pk')}", {"bill_hash_mismatch": True})

    world.open_bills()
    with pytest.raises(ProviderUnavailableError) as failed:
        recon.run_day(world.day)
    assert failed.value.metadata["account"] == "direct-pk"
    assert failed.value.metadata["provider_code"] == "BILL_HASH_MISMATCH"

    report = recon.report(world.day)
    by_account = {part.account: part for part in report.parts}
    assert by_account["direct-pk"].summary.status == "NOT_RUN"  # released for a retry
    assert by_account["direct-cert"].summary.status == "DONE"
    assert by_account["direct-cert"].clean
    mismatch = [e for e in report.exceptions if e.kind is ExceptionKind.AMOUNT_MISMATCH]
    assert [(e.account, e.out_trade_no, e.status) for e in mismatch] == [
        ("sp-sub-a", off.out_trade_no, ExceptionStatus.OPEN)
    ]
    assert [e.account for e in recon.open_exceptions(account="sp-sub-a")] == ["sp-sub-a"]
    assert recon.open_exceptions(world.day, account="direct-cert") == []

    world.control("PUT", f"config?{world.book('direct-pk')}", {"bill_hash_mismatch": False})
    again = recon.run_day(world.day, account="direct-pk")  # the failed account alone, later
    assert (again.account, again.summary.status, again.exceptions) == ("direct-pk", "DONE", [])
    with world.app.db.connection_context():
        assert PeeweeReconStore().summary(world.day, "sp-sub-a") is not None
