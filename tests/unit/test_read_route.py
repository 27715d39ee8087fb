"""ReadRoute's decisions, on fake databases: which failures send a read to the primary, which are
raised, and when the standby is tried again. The real thing is tests/integration/test_read_routing.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import peewee as pw
import pytest

from server.adapters.read_routing import _ROUTED, ReadRoute


class DriverError(Exception):
    """What psycopg2 raises, reduced to its SQLSTATE (peewee keeps it as `.orig`)."""

    def __init__(self, pgcode: str) -> None:
        super().__init__(f"SQLSTATE {pgcode}")
        self.pgcode = pgcode


class FakeDatabase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.fail_with: str | None = None  # a SQLSTATE every read fails with
        self.reads = 0

    @contextmanager
    def connection_context(self) -> Iterator[None]:
        yield

    def answer(self) -> str:
        self.reads += 1
        if self.fail_with is not None:
            error = pw.OperationalError(self.fail_with)
            error.orig = DriverError(self.fail_with)  # type: ignore[attr-defined]
            raise error
        return self.name


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def route_over(primary: FakeDatabase, standby: FakeDatabase, clock: Clock, seen: list[str]) -> ReadRoute:
    fake: Any = (primary, standby)
    return ReadRoute(fake[0], fake[1], observe=seen.append, retry_after_s=10, monotonic=clock)


def read(route: ReadRoute) -> str:
    def where() -> str:
        database = _ROUTED.get()
        assert isinstance(database, FakeDatabase)
        return database.answer()

    return route.run(where)


@pytest.mark.parametrize("sqlstate", ["08006", "57P01", "57P03", "40001"])
def test_a_standby_that_cannot_serve_sends_the_read_to_the_primary(sqlstate: str) -> None:
    primary, standby, clock, seen = FakeDatabase("primary"), FakeDatabase("standby"), Clock(), []
    route = route_over(primary, standby, clock, seen)
    assert read(route) == "standby"
    standby.fail_with = sqlstate
    assert read(route) == "primary"
    assert seen == ["standby", "primary_fallback"]


@pytest.mark.parametrize("sqlstate", ["42601", "25006"])  # a bad query; a write on the standby (a bug)
def test_a_failure_the_primary_would_share_or_a_write_is_raised_not_retried(sqlstate: str) -> None:
    primary, standby, clock, seen = FakeDatabase("primary"), FakeDatabase("standby"), Clock(), []
    standby.fail_with = sqlstate
    with pytest.raises(pw.OperationalError):
        read(route_over(primary, standby, clock, seen))
    assert primary.reads == 0


def test_after_a_failure_the_standby_is_left_alone_for_a_while_then_tried_again() -> None:
    primary, standby, clock, seen = FakeDatabase("primary"), FakeDatabase("standby"), Clock(), []
    route = route_over(primary, standby, clock, seen)
    standby.fail_with = "08006"
    assert read(route) == "primary"
    clock.now = 9.9
    assert read(route) == "primary"
    assert standby.reads == 1  # not asked again inside the window
    standby.fail_with = None
    clock.now = 10.0
    assert read(route) == "standby"
    assert seen == ["primary_fallback", "primary_fallback", "standby"]


def test_a_nested_read_stays_where_the_outer_one_runs() -> None:
    primary, standby, clock, seen = FakeDatabase("primary"), FakeDatabase("standby"), Clock(), []
    route = route_over(primary, standby, clock, seen)
    assert route.run(lambda: (read(route), read(route))) == ("standby", "standby")
    assert seen == ["standby"]  # one routed read, not three
    assert _ROUTED.get() is None  # nothing left pointed elsewhere afterwards
