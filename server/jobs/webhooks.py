"""The webhook sender, a task of the job runner (server.jobs.scheduler).

Each run leases the due webhooks (at most `concurrency`) and delivers their backlogs side by side on
a small pool of threads, one subscriber per thread so each keeps its feed order. The runner runs the
task again at once while a subscriber has more to send, else after ORDERPAY_JOB_INTERVAL_S.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import structlog

from server.service.shapes import JobResult
from server.service.webhooks import Claim, DeliveryReport, WebhookService

log = structlog.get_logger("orderpay.jobs")


class WebhookTask:
    name = "webhooks"

    def __init__(self, service: WebhookService, concurrency: int) -> None:
        self._service = service
        self._concurrency = max(1, concurrency)
        self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="webhook")

    def run_once(self) -> JobResult:
        claims = self._service.claim(self._concurrency)
        if not claims:
            return JobResult(items=0)
        reports = list(self._pool.map(self._deliver, claims))
        return JobResult(
            items=sum(r.delivered for r in reports),
            errors=sum(1 for r in reports if r.failed),
            more=any(r.more for r in reports),
        )

    def _deliver(self, claim: Claim) -> DeliveryReport:
        try:
            return self._service.deliver(claim)
        except Exception:  # one subscriber's crash must not lose the others' reports; its lease frees it
            log.exception("webhook.crashed", subscriber=claim.webhook.subscriber)
            return DeliveryReport(claim.webhook.subscriber, failed=True)

    def oldest_due(self) -> datetime | None:
        return self._service.oldest_due()

    def close(self) -> None:
        self._pool.shutdown(wait=False)
