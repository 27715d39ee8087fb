"""structlog configuration: JSON when stderr is not a terminal, one readable line per event otherwise.

On a terminal (`orderpay dev`, `orderpay serve` in a shell) the canonical RPC line reads
`10:03:17 [info] rpc OrderService/CreateOrder  code=OK duration_ms=2.06 user_id=… request_id=…`;
piped, every line is the full JSON object (the operator's and the log shipper's format).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if use_json:
        tail: list[structlog.typing.Processor] = [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    else:
        tail = [
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            _readable_rpc,
            structlog.dev.ConsoleRenderer(sort_keys=False, pad_event_to=0),
        ]
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")


def _readable_rpc(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`rpc` + `/orderpay.v1.OrderService/CreateOrder` -> `rpc OrderService/CreateOrder`; no peer."""
    method = event.get("rpc")
    if event.get("event") == "rpc" and isinstance(method, str):
        event["event"] = f"rpc {method.rsplit('.', 1)[-1]}"
        del event["rpc"]
        event.pop("peer", None)
    return event
