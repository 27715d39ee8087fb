"""Background jobs: fulfilment, expiry, payment reconciliation, refund polling, notification re-processing.

Every job claims its rows before working on them, so N server processes can run all of them at once.
"""

from server.jobs.scheduler import JobRunner
from server.service.ports import Task
from server.service.shapes import JobResult

__all__ = ["JobResult", "JobRunner", "Task"]
