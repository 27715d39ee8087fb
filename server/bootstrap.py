"""The composition root: builds every collaborator from Settings, once, into a frozen App.

What reacts to what is not wired here: that is the handler table, server.service.handlers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path

import peewee as pw

from server.adapters.account_gateways import replaced_gateway, wechat_gateways
from server.adapters.db import bind, make_database, migrate_with_session
from server.adapters.decisions import FulfilmentDecisions
from server.adapters.faults import TRANSIENT_DATABASE_ERRORS
from server.adapters.read_routing import READ_APPLICATION_NAME, ReadRoute
from server.adapters.unit_of_work import read_only_factory, unit_of_work_factory
from server.app import App, PaymentsPart
from server.config import ConfigError, Settings
from server.domain.clock import Clock, utc_now
from server.domain.errors import ProviderUnavailableError
from server.domain.fulfilment import RetryPolicy
from server.domain.recon_records import FundBill, TradeBill
from server.domain.routing import AccountRouter
from server.observers import observe_read_route, observe_recon, provider_observer
from server.operations_wiring import build_operations
from server.service.catalogue import CatalogueService
from server.service.external import ExternalFulfilment
from server.service.feed import FeedCommits, FeedService
from server.service.fulfilment import FulfilmentWorker
from server.service.handlers import Policy, Reactors, transactional
from server.service.notifications import NotificationService
from server.service.orders import OrderService
from server.service.payments import PaymentService
from server.service.ports import BillSource, PaymentGateway, ReadFactory, UnitOfWorkFactory
from server.service.reconciliation import ReconciliationService
from server.service.refunds import RefundService
from server.webhook_wiring import build_webhooks
from server.wxpay.accounts import Accounts, account_router, has_accounts, is_multi_account, load_accounts
from server.wxpay.bills import WeChatBills
from server.wxpay.client import WeChatPayClient
from server.wxpay.notification import accounts_parser


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.fulfilment_max_attempts,
        base_s=settings.fulfilment_backoff_base_s,
        max_s=settings.fulfilment_backoff_max_s,
    )


def build_app(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    run_migrations: bool = True,
    payments_required: bool = True,
    gateway: PaymentGateway | None = None,
    bills: BillSource | None = None,
    prompt_fulfilment: bool = True,
) -> App:
    """Everything, once. `payments_required=False`: no credentials bundle means no payments part
    (commands and tests that need none); otherwise a missing or broken bundle raises a one-line
    ConfigError / CredentialsError. `gateway` replaces WeChat Pay (tests). `prompt_fulfilment=False`
    leaves every fulfilment to the job (tests that drive the worker themselves)."""
    # Credentials first: a start refused for want of them must leave no database behind (a later tool
    # would take that empty, migrated file for the server's).
    with_payments = _has_credentials(settings, payments_required)
    db = make_database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        busy_timeout_ms=settings.db_busy_timeout_ms,
        synchronous_commit=settings.db_synchronous_commit,
        # A session URL beside database_url means database_url goes through a transaction-mode pooler.
        prepares=not settings.database_session_url,
    )
    bind(db)
    if run_migrations:
        migrate_with_session(db, settings.database_session_url)
    policy = Policy(auto_refund_on_fulfilment_failure=settings.auto_refund_on_fulfilment_failure)
    decisions = FulfilmentDecisions(db)
    commits = FeedCommits()  # the server's Watch streams subscribe (server/lifecycle.py)
    uow, worker = _unit_of_work(
        db, settings, clock, policy, (decisions, commits), with_payments, prompt_fulfilment
    )
    read = read_only_factory(db)
    feed = FeedService(
        uow, read, clock, retention=timedelta(days=settings.feed_retention_days), commits=commits
    )
    payments = None
    if with_payments:
        payments = _payments_part(settings, uow, read, clock, gateway, bills, decisions, worker)
    closer = payments.payments.close_at_provider if payments is not None else None
    orders = OrderService(
        uow,
        clock,
        timedelta(seconds=settings.order_ttl_s),
        prepay_closer=closer,
        read=read,
        router=_account_router(settings),
    )
    catalogue = CatalogueService(uow, clock, read=read)
    admin, operations = build_operations(_read_route(settings, db), uow, read, clock, payments)
    webhooks = build_webhooks(settings, uow, read, clock)
    return App(settings, db, uow, read, clock, orders, catalogue, payments, admin, operations, feed, webhooks)


READ_POOL_SIZE = 8  # the operator's reads: a console and a few admin calls at a time


def _read_route(settings: Settings, db: pw.Database) -> ReadRoute:
    """The operator's reads: on the standby of ORDERPAY_DATABASE_READ_URL when set (connected lazily:
    a standby down at start costs nothing but a fallback), else on the primary."""
    if not settings.database_read_url:
        return ReadRoute(db)
    standby = make_database(
        settings.database_read_url, pool_size=READ_POOL_SIZE, application_name=READ_APPLICATION_NAME
    )
    return ReadRoute(db, standby, observe=observe_read_route)


def _has_credentials(settings: Settings, required: bool) -> bool:
    bundle = Path(settings.credentials_dir)
    if has_accounts(bundle):  # the one-account bundle, or a directory per account (issue 18)
        return True
    if not required:
        return False
    raise ConfigError(
        f"no credentials bundle in {bundle} (ORDERPAY_CREDENTIALS_DIR); "
        f"`orderpay keys init --dir {bundle}` makes a throwaway one"
    )


def _unit_of_work(
    db: pw.Database,
    settings: Settings,
    clock: Clock,
    policy: Policy,
    announcers: tuple[FulfilmentDecisions, FeedCommits],
    with_payments: bool,
    prompt_fulfilment: bool,
) -> tuple[UnitOfWorkFactory, FulfilmentWorker]:
    """The unit of work runs the after-commit reactions, and one of them calls the fulfilment worker,
    which commits through that same unit of work: `transactional` hands the finished factory to
    `reactors`, which builds the one worker."""
    workers: list[FulfilmentWorker] = []
    decisions, feed = announcers
    external_deadline = timedelta(seconds=settings.external_fulfilment_deadline_s)

    def reactors(committed: UnitOfWorkFactory) -> Reactors:
        policy = retry_policy(settings)
        workers.append(FulfilmentWorker(committed, clock, policy=policy, external_deadline=external_deadline))
        fulfilment = workers[0] if with_payments else None  # orders only: nothing is ever paid here
        return Reactors(
            fulfilment=fulfilment, decisions=decisions, prompt_fulfilment=prompt_fulfilment, feed=feed
        )

    uow = transactional(unit_of_work_factory(db), clock, policy, reactors)
    return uow, workers[0]


def _payments_part(
    settings: Settings,
    uow: UnitOfWorkFactory,
    read: ReadFactory,
    clock: Clock,
    gateway: PaymentGateway | None,
    bills: BillSource | None,
    decisions: FulfilmentDecisions,
    worker: FulfilmentWorker,
) -> PaymentsPart:
    accounts = load_accounts(settings.credentials_dir, settings.default_account)  # all checked, one line
    credentials = accounts.default.credentials
    sources: dict[str, BillSource] = {}
    if gateway is None:  # every account's gateway; one key store per signing account, client and sidecar
        wired = wechat_gateways(settings, accounts, provider_observer)
        sources = account_bills(accounts, wired.clients, settings.wxpay_bill_download_timeout_s)
    else:
        wired = replaced_gateway(accounts, gateway)
    if bills is not None:  # tests: one bill source, the default account's
        sources = {accounts.default_name: bills}
    gateways = wired.gateways
    merchant = gateways.identity(accounts.default_name)
    per_account = is_multi_account(settings.credentials_dir)  # notify_url/<account> for each account
    payments = PaymentService(
        uow,
        clock,
        gateways,
        merchant,
        settings.notify_url,
        settings.reconcile_schedule_s,
        read=read,
        notify_per_account=per_account,
    )
    refunds = RefundService(
        uow,
        clock,
        gateways.gateway_for(merchant),
        merchant,
        settings.notify_url,
        settings.refund_poll_schedule_s,
        read=read,
        gateways=gateways,
        notify_url_for=payments.notify_url_for,
    )
    notifications = NotificationService(
        uow=uow,
        read=read,
        clock=clock,
        parse=accounts_parser(wired.notify_keys, accounts.default_name, settings.notify_clock_skew_s),
        payments=payments,
        refunds=refunds,
        transient_faults=TRANSIENT_DATABASE_ERRORS,  # incl. an exhausted connection pool
        accounts=(accounts.default_name, *(n for n in accounts.names if n != accounts.default_name)),
    )
    reconciliation = ReconciliationService(
        uow,
        read,
        clock,
        sources or {accounts.default_name: _NoBills()},
        payments,
        refunds,
        observer=observe_recon,
    )
    external = ExternalFulfilment(uow, clock)
    return PaymentsPart(
        credentials, gateways, payments, refunds, notifications, worker, reconciliation, decisions, external
    )


def account_bills(
    accounts: Accounts, clients: Mapping[str, WeChatPayClient], download_timeout_s: float
) -> dict[str, BillSource]:
    """Each account's bills (issue 18 §5): a direct merchant's own; a provider's own (its
    sub-merchants' rows left to them); a sub-merchant's, applied for by its provider with `sub_mchid`."""
    sources: dict[str, BillSource] = {}
    for account in accounts:
        client = clients[account.provider or account.name]
        sources[account.name] = WeChatBills(
            client,
            download_timeout_s=download_timeout_s,
            sub_mchid=account.sub_mchid,
            own_only=account.kind == "provider",
        )
    return sources


def _account_router(settings: Settings) -> AccountRouter:
    """Which account takes a new order (issue 18); without any credentials, the one `default`."""
    bundle = Path(settings.credentials_dir)
    if not has_accounts(bundle):
        return AccountRouter()
    return account_router(load_accounts(bundle, settings.default_account), settings.account_routes)


class _NoBills:
    """A replaced gateway (tests) without a bill source: reconciliation says so when it runs."""

    def trade_bill(self, _day: date) -> TradeBill | None:
        raise _no_bills()

    def fund_flow_bill(self, _day: date) -> FundBill | None:
        raise _no_bills()


def _no_bills() -> ProviderUnavailableError:
    return ProviderUnavailableError("no bill source configured", metadata={"provider_code": "NO_BILLS"})
