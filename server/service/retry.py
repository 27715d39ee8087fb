"""The one bounded retry for optimistic locking: run the attempt again when another writer won."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from server.service.errors import TransientError

CAS_ATTEMPTS = 5
_T = TypeVar("_T")


class Conflict(Exception):  # noqa: N818 - a signal: roll this transaction back and try again
    """Raised inside a unit of work when a compare-and-set lost; the whole attempt is retried."""


def retry_on_conflict(attempt: Callable[[], _T | None], what: str, attempts: int = CAS_ATTEMPTS) -> _T:
    """Call `attempt` until it returns something; None or `Conflict` mean "lost a race, again".

    After `attempts` losses: TransientError (the caller, or WeChat, retries later).
    """
    for _ in range(attempts):
        try:
            result = attempt()
        except Conflict:
            continue
        if result is not None:
            return result
    raise TransientError(f"{what}: kept changing under concurrent writers")
