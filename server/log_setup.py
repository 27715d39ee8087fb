"""structlog configuration: JSON when stderr is not a terminal, one readable line per event otherwise;
and the canonical per-call line (`CALLS`), written off the hot path.

On a terminal (`orderpay dev`, `orderpay serve` in a shell) the canonical RPC line reads
`10:03:17 [info] rpc OrderService/CreateOrder  code=OK duration_ms=2.06 user_id=… request_id=…`;
piped, every line is the full JSON object (the operator's and the log shipper's format).

The canonical line costs the call one dict and one queue put (`CallLog.emit`): a writer thread
renders the lines and writes them in batches. Through structlog's processor chain, on the call's own
task, the same line cost 110–225 µs per call (issue 23); `orderpay bench` measures this one.
The call's fields are also what every other line logged during the call carries (`CALL_FIELDS`).
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog

CallFields = dict[str, Any]
# The running call's canonical fields (request id, method, business ids): merged into every line
# logged while it runs, on the loop or on a database thread (Offload copies the context).
CALL_FIELDS: ContextVar[CallFields | None] = ContextVar("orderpay_call_fields", default=None)
BATCH_WINDOW_S = 0.05  # a line reaches the log at most this late (plus its own write)


def merge_call_fields(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    fields = CALL_FIELDS.get()
    if fields:
        for key in ("request_id", "rpc", "user_id", "order_id", "out_refund_no"):
            if key in fields:
                event.setdefault(key, fields[key])
    return event


def render_json(fields: CallFields) -> str:
    fields["event"], fields["level"] = "rpc", "info"
    fields["timestamp"] = _iso(fields["timestamp"])
    return json.dumps(fields, default=str) + "\n"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _render_readable(fields: CallFields) -> str:
    method = str(fields.pop("rpc", ""))
    when = datetime.fromtimestamp(fields.pop("timestamp"), UTC).astimezone().strftime("%H:%M:%S")
    code, duration = fields.pop("code", ""), fields.pop("duration_ms", "")
    rest = " ".join(f"{key}={value}" for key, value in fields.items())
    return f"{when} [info     ] rpc {method.rsplit('.', 1)[-1]} code={code} duration_ms={duration} {rest}\n"


class CallLog:
    """One line per call at level info. `emit` is the hot path: the fields dict (already built by
    the caller) and the wall time go on a queue; one daemon thread renders and writes batches.

    The writer wakes once per batch window, not once per line: woken per line it took the GIL from
    the loop and made a write syscall per call (~100 µs of CPU per call under B1's load). `emit`
    wakes it only when it sleeps with an empty queue; lines stay queued until drained under the lock,
    so `flush` and `captured` see every one of them."""

    def __init__(self) -> None:
        self.enabled = False
        self._render: Callable[[CallFields], str] = render_json
        self._stream: TextIO = sys.stderr
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = False  # the writer waits on `_wake` (set by the next emit)
        self._stopping = False

    def configure(self, *, enabled: bool, render: Callable[[CallFields], str], stream: TextIO) -> None:
        self.flush()
        self.enabled, self._render, self._stream = enabled, render, stream

    def emit(self, fields: CallFields, timestamp: float) -> None:
        fields["timestamp"] = timestamp
        self._queue.put(fields)  # first, so a writer going idle sees it (no lost wake-up)
        if self._idle:
            self._idle = False
            self._wake.set()
        elif self._writer is None:
            self._start()

    def flush(self) -> None:
        """Write what is queued now, on the caller's thread (tests, shutdown)."""
        with self._lock:
            self._write(self._drain([]))

    @contextmanager
    def captured(self) -> Iterator[list[CallFields]]:
        """Tests: the lines emitted inside the block, as field dicts, instead of written."""
        saved = (self.enabled, self._render, self._stream)
        self.flush()
        lines: list[CallFields] = []

        def collect(fields: CallFields) -> str:
            lines.append({**fields, "event": "rpc"})
            return ""

        self.enabled, self._render = True, collect
        try:
            yield lines
        finally:
            self.flush()
            self.enabled, self._render, self._stream = saved

    def _start(self) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="call-log", daemon=True)
                self._writer.start()
                atexit.register(self._stop)

    def _run(self) -> None:
        while not self._stopping:
            self._idle = True
            if self._queue.empty():
                self._wake.wait()
            self._idle = False
            self._wake.clear()
            time.sleep(BATCH_WINDOW_S)  # let the batch gather
            self.flush()

    def _drain(self, batch: list[Any]) -> list[CallFields]:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch
            batch.append(item)

    def _write(self, batch: list[CallFields]) -> None:
        if not batch:
            return
        text = "".join([self._render(fields) for fields in batch])
        if text:
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError):  # stderr closed at exit: nothing left to tell
                pass

    def _stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self.flush()


CALLS = CallLog()


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        merge_call_fields,
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
            structlog.dev.ConsoleRenderer(sort_keys=False, pad_event_to=0),
        ]
    threshold = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        # One write per line (print writes the newline separately, so the call-log writer thread could
        # land its batch between a line and its newline: two lines run together on the terminal).
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    CALLS.configure(
        enabled=threshold <= logging.INFO,
        render=render_json if use_json else _render_readable,
        stream=sys.stderr,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
