"""The few use cases that call WeChat Pay (a sync HTTP client with a 5 s budget) run here, on a small
owned thread pool, so a slow provider never stalls the event loop. Everything else runs inline on
the loop: a short database transaction costs less than two thread hand-offs (see README § Benchmarks).
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
    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="offload")

    async def run(self, work: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """`work(*args, **kwargs)` on a pool thread, with this call's contextvars (log context)."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, work, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def shutdown(self) -> None:
        """Running calls finish (the caller waited for in-flight RPCs first); queued ones are dropped."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class InlineExecutor(Executor):
    """Runs the work in `submit`, on the caller's thread: for DB-only work on the event loop, where
    a hand-off to a thread costs more than the work (the notify sidecar with `notify_workers=0`)."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the future's reader, like a pool would
            future.set_exception(exc)
        return future
