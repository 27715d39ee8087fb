"""Where blocking work runs, relative to the event loop (measured; README § Benchmarks):

- Calls to WeChat Pay (a sync HTTP client with a 5 s budget) run on a small owned thread pool, so a
  slow provider never stalls the loop.
- Database work on SQLite runs inline on the loop: a short WAL transaction on a local file costs less
  than two thread hand-offs.
- Database work on PostgreSQL runs on a few threads: each statement is a network round trip, and a
  loop blocked on it would serve one call at a time; threads overlap the waits (the GIL is released).

Both shapes share one interface, `await runner.run(work, *args)`, so servicers do not care which.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Offload:
    """A bounded pool of threads of our own; `run` awaits the work without blocking the loop."""

    def __init__(self, workers: int, name: str = "offload") -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def run(self, work: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """`work(*args, **kwargs)` on a pool thread, with this call's contextvars (log context)."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, work, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def shutdown(self) -> None:
        """Running calls finish (the caller waited for in-flight RPCs first); queued ones are dropped."""
        self.executor.shutdown(wait=True, cancel_futures=True)


class Inline:
    """The same interface, on the loop's own thread: for work shorter than a thread hand-off."""

    def __init__(self) -> None:
        self.executor: Executor = InlineExecutor()

    async def run(self, work: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return work(*args, **kwargs)

    def shutdown(self) -> None:
        """Nothing to stop."""


Runner = Offload | Inline


class InlineExecutor(Executor):
    """Runs the work in `submit`, on the caller's thread (an `Executor` for code that takes one, like
    the notify sidecar).

    `turns`: on the loop, inline jobs that arrive together take turns, one per loop iteration. A loop
    iteration runs every callback that is ready; without turns a burst of N notifications runs back
    to back in one iteration, and every other step on the loop (a woken long-poll's read, its answer,
    gRPC's completions) waits N jobs per step: seconds under a storm (B7).
    """

    def __init__(self) -> None:
        self.turns = asyncio.Lock()

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the future's reader, like a pool would
            future.set_exception(exc)
        return future
