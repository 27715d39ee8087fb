"""The standard jobs of `orderpay serve`, built from the App (see server.lifecycle)."""

from __future__ import annotations

from server.app import App
from server.jobs.recon_task import ReconTask
from server.jobs.scheduler import JobRunner
from server.jobs.tasks import ExpiryTask, FulfilmentTask, NotificationTask, ReconcileTask, RefundPollTask
from server.jobs.webhooks import WebhookTask
from server.service.ports import Task
from server.webhook_wiring import delivery


def standard_tasks(app: App) -> list[Task]:
    part = app.payments
    if part is None:
        raise RuntimeError("the jobs need the payments part (a credentials bundle)")
    return [
        FulfilmentTask(part.fulfilment),
        ExpiryTask(app.uow, app.clock, app.orders),
        ReconcileTask(app.uow, app.clock, part.payments),
        RefundPollTask(app.uow, app.clock, part.refunds),
        NotificationTask(part.notifications),
        ReconTask(part.reconciliation, app.clock),
        WebhookTask(delivery(app), app.settings.webhook_concurrency),
    ]


def build_jobs(app: App) -> JobRunner:
    return JobRunner(standard_tasks(app), app.clock, app.settings.job_interval_s)


def start_jobs(app: App) -> JobRunner:
    runner = build_jobs(app)
    runner.start()
    return runner
