"""The one way tests wait: poll a condition until a deadline (never a bare sleep).

A wait on a child process gives up the moment that child exits, with what it printed: a server that
refused to start (a port in use, a missing key) fails the test in a second, not after the timeout.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

TAIL_CHARS = 3000


class ChildExitedError(AssertionError):
    """The child a test waited on exited before the condition held."""


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float = 10.0,
    what: str = "condition",
    interval_s: float = 0.01,
    *,
    child: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
    output: Path | Callable[[], str] | None = None,
) -> None:
    """Poll `condition`; with `child`, stop as soon as it exits, showing the tail of `output` (its log
    file, or a function returning what it printed)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if child is not None and child.poll() is not None:
            if condition():  # it did what we waited for, then exited: not a failure of the wait
                return
            raise ChildExitedError(
                f"{what}: the child (pid {child.pid}) exited with {child.returncode} before it happened"
                f"\n--- its output (tail) ---\n{_tail(output)}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{_tail(output)}")
        time.sleep(interval_s)


def _tail(output: Path | Callable[[], str] | None) -> str:
    if output is None:
        return "(output not captured)"
    try:
        text = output.read_text(errors="replace") if isinstance(output, Path) else output()
    except OSError as error:
        return f"(cannot read the output: {error})"
    return text[-TAIL_CHARS:]
