"""L1: what the canonical per-call log line costs, in process CPU per call (the writer thread
included), against the same line through structlog's processor chain on the call's own thread (what
the interceptor did before issue 23), and against building nothing.

In-process and single-threaded on purpose: the figure is CPU per line, not latency.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import structlog

from clients.bench.model import CaseResult, Row
from server.log_setup import CALL_FIELDS, CallLog, render_json

LINES = 20_000
MAX_US_PER_LINE = 40.0
METHOD = "/orderpay.v1.OrderService/CreateOrder"


def _queued(sink: Any) -> Callable[[int], None]:
    calls = CallLog()
    calls.configure(enabled=True, render=render_json, stream=sink)

    def one(index: int) -> None:
        fields: dict[str, Any] = {"request_id": f"req-{index}", "rpc": METHOD}
        CALL_FIELDS.set(fields)
        fields["user_id"] = "lt-0123456789-1234"
        fields["order_id"] = "ord_33b474eb667278b33200ba95"
        fields["code"], fields["duration_ms"] = "OK", 1.23
        calls.emit(fields, time.time())
        if index == LINES - 1:
            calls.flush()

    return one


def _processor_chain(sink: Any) -> Callable[[int], None]:
    log = structlog.wrap_logger(
        structlog.PrintLogger(sink),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(20),
    )

    def one(index: int) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=f"req-{index}", rpc=METHOD)
        structlog.contextvars.bind_contextvars(user_id="lt-0123456789-1234")
        structlog.contextvars.bind_contextvars(order_id="ord_33b474eb667278b33200ba95")
        log.info("rpc", code="OK", duration_ms=1.23, peer="ipv4:127.0.0.1:51234")

    return one


def _nothing(_sink: Any) -> Callable[[int], None]:
    def one(index: int) -> None:
        del index

    return one


def _cpu_us_per_line(build: Callable[[Any], Callable[[int], None]]) -> float:
    with open(os.devnull, "w", encoding="utf-8") as sink:
        one = build(sink)
        started = time.process_time()  # every thread of the process: the writer is counted
        for index in range(LINES):
            one(index)
        return (time.process_time() - started) * 1e6 / LINES


async def l1_log_line(_bench: object = None) -> CaseResult:
    case = CaseResult(
        "L1",
        f"the canonical per-call log line at level info, {LINES:,} lines, CPU per line",
        f"≤ {MAX_US_PER_LINE:.0f} µs per line",
    )
    nothing = _cpu_us_per_line(_nothing)
    queued = _cpu_us_per_line(_queued) - nothing
    chain = _cpu_us_per_line(_processor_chain) - nothing
    case.rows = [
        Row("queued to a writer thread (orderpay)", value=f"{queued:.1f} µs"),
        Row("structlog processor chain on the call's thread (before)", value=f"{chain:.1f} µs"),
    ]
    case.ratio, case.ratio_of = round(queued / chain, 3), "queued / processor chain"
    case.figures = {"µs per line": round(queued, 2), "µs per line, processor chain": round(chain, 2)}
    case.passed = queued <= MAX_US_PER_LINE
    return case
