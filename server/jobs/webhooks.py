"""The webhook sender, a task of the job runner (server.jobs.scheduler).

Each run leases the due webhooks (at most `concurrency`) and delivers their backlogs side by side,
one subscriber per thread so each keeps its feed order. The threads are daemons, like the runner's:
a shutdown does not wait for a slow receiver, and the POST it cuts off was not acknowledged, so it is
sent again later (at least once). The runner runs the task again at once while a subscriber has more
to send, else after ORDERPAY_JOB_INTERVAL_S.
"""

from __future__ import annotations

import threading
from datetime import datetime

import structlog

from server.service.shapes import JobResult
from server.service.webhook_delivery import Claim, DeliveryReport, WebhookDelivery

log = structlog.get_logger("orderpay.jobs")


class WebhookTask:
    name = "webhooks"

    def __init__(self, service: WebhookDelivery, concurrency: int) -> None:
        self._service = service
        self._concurrency = max(1, concurrency)

    def run_once(self) -> JobResult:
        claims = self._service.claim(self._concurrency)
        if not claims:
            return JobResult(items=0)
        reports: list[DeliveryReport] = [DeliveryReport(c.webhook.subscriber, failed=True) for c in claims]

        def deliver(i: int) -> None:
            reports[i] = self._deliver(claims[i])

        threads = [
            threading.Thread(target=deliver, args=(i,), name=f"webhook:{c.webhook.subscriber}", daemon=True)
            for i, c in enumerate(claims)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
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
        self._service.close()
