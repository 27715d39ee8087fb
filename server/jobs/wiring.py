"""Composition for fulfilment and jobs: what `orderpay serve` starts (see server.runner)."""

from __future__ import annotations

from server.adapters.fulfilment_store import PeeweeFulfilmentStore
from server.adapters.job_queries import JobQueries
from server.app import App
from server.jobs.recon_task import ReconTask  # issue 12
from server.jobs.runner import JobRunner, Task
from server.jobs.tasks import (
    ExpiryTask,
    FulfilmentTask,
    NotificationReprocessor,
    NotificationTask,
    ReconcileTask,
    RefundPollTask,
)
from server.recon_wiring import wire_reconciliation  # issue 12
from server.service.fulfilment import FulfilmentWorker, RetryPolicy


def wire_fulfilment(app: App) -> FulfilmentWorker:
    """Build the worker once per App and hook it into payments (prompt run) and refunds (revoke)."""
    existing = app.extras.get("fulfilment")
    if isinstance(existing, FulfilmentWorker):
        return existing
    worker = FulfilmentWorker(
        app.uow,
        app.clock,
        PeeweeFulfilmentStore(app.db),
        policy=RetryPolicy.from_settings(app.settings),
        refunder=app.refunds,
        auto_refund=app.settings.auto_refund_on_fulfilment_failure,
    )
    if app.payments is not None:
        app.payments.on_paid = worker.fulfil_now
    if app.refunds is not None:
        app.refunds.revoke_grants = worker.revoke_grants
    app.extras["fulfilment"] = worker
    return worker


def standard_tasks(app: App, notifications: NotificationReprocessor | None = None) -> list[Task]:
    queries = JobQueries(app.db)
    tasks: list[Task] = [
        FulfilmentTask(wire_fulfilment(app)),
        ExpiryTask(app.uow, app.clock, queries, app.orders),
    ]
    if app.payments is not None:
        tasks.append(ReconcileTask(app.uow, app.clock, queries, app.payments))
    if app.refunds is not None:
        tasks.append(RefundPollTask(app.uow, app.clock, queries, app.refunds))
    if notifications is not None:
        tasks.append(NotificationTask(notifications))
    recon = wire_reconciliation(app)  # issue 12: the daily bill reconciliation
    if recon is not None:  # issue 12
        tasks.append(ReconTask(recon, app.clock))  # issue 12
    return tasks


def build_jobs(app: App, notifications: NotificationReprocessor | None = None) -> JobRunner:
    """The standard jobs; the notification re-processor is the sidecar's service when none is given."""
    tasks = standard_tasks(app, notifications or _notifications(app))
    return JobRunner(tasks, app.clock, app.settings.job_interval_s)


def start_jobs(app: App) -> JobRunner:
    runner = build_jobs(app)
    runner.start()
    return runner


def _notifications(app: App) -> NotificationReprocessor | None:
    existing = app.extras.get("notifications")
    if existing is None and app.credentials is not None and app.payments is not None:
        from server.notify.wiring import notification_service  # noqa: PLC0415 - optional part

        existing = notification_service(app)
    return existing if isinstance(existing, NotificationReprocessor) else None
