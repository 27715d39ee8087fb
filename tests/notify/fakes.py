"""A fake payments/refunds pair: idempotent like the real services, thread-safe, scriptable faults."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from server.adapters.faults import TRANSIENT_DATABASE_ERRORS
from server.app import App
from server.domain.provider import RefundReport, TransactionReport
from server.service.notifications import NotificationService
from server.service.ports import UnitOfWorkFactory
from server.wxpay.credentials import load_credentials
from server.wxpay.notification import notification_parser


@dataclass(frozen=True)
class FakeResult:
    outcome: str


@dataclass
class FakeLedger:
    """Applies each out_trade_no / out_refund_no once; `faults` are raised (in order) before applying."""

    applied: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    faults: list[Exception] = field(default_factory=list)
    scripted: dict[str, str] = field(default_factory=dict)  # key -> outcome instead of applying
    sources: list[str] = field(default_factory=list)
    log_context: list[dict[str, object]] = field(default_factory=list)  # structlog's, as each apply saw it
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def apply_in(
        self,
        uow: object,
        report: TransactionReport | RefundReport,
        *,
        source: str,
        account: str | None = None,
    ) -> FakeResult:
        """Inside the notification's own transaction, like PaymentService / RefundService."""
        del uow
        key = report.out_refund_no if isinstance(report, RefundReport) else report.out_trade_no
        return self._apply(key, source)

    def _apply(self, key: str, source: str) -> FakeResult:
        with self._lock:
            self.calls[key] += 1
            self.sources.append(source)
            self.log_context.append(structlog.contextvars.get_contextvars())
            if self.faults:
                raise self.faults.pop(0)
            if key in self.scripted:
                return FakeResult(self.scripted[key])
            if self.applied[key]:
                return FakeResult("duplicate")
            self.applied[key] += 1
            return FakeResult("applied")


MAX_SKEW_S = 300


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
