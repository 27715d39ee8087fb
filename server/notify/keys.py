"""Typed application and request keys shared by the sidecar's views and middleware."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from aiohttp import web

from server.service.notifications import NotificationService


@dataclass
class RequestRecord:
    """What the canonical log line says about one request; views fill in what they learn."""

    request_id: str
    outcome: str = ""
    notification_id: str = ""
    event_type: str = ""
    out_trade_no: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NotifyConfig:
    max_body_bytes: int
    answer_within_s: float
    ready_timeout_s: float


SERVICE = web.AppKey("notification_service", NotificationService)
READY_CHECK: web.AppKey[Callable[[], bool]] = web.AppKey("ready_check")
EXECUTOR = web.AppKey("executor", Executor)
CONFIG = web.AppKey("notify_config", NotifyConfig)
RECORD = web.RequestKey("request_record", RequestRecord)
