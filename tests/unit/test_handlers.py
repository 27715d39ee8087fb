"""The handler table: every event has its row, and in-transaction reactions share the transition's fate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import pytest
import structlog

from server.domain.events import Event, FulfilmentFailed, OrderFullyRefunded, OrderPaid
from server.domain.feed import FeedType
from server.domain.fulfilment import GrantState
from server.domain.order import OrderStatus
from server.service.feed import FeedCommits
from server.service.handlers import HANDLERS, Policy, Reactions, Reactors, transactional
from server.service.ports import UnitOfWork
from server.service.shapes import Grant
from tests.support.fake_uow import FakeDatabase, recording
from tests.unit.test_payment_rules import an_order

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def test_every_event_has_a_row_in_the_table() -> None:
    assert set(HANDLERS) == set(get_args(Event))


def test_in_transaction_reactions_commit_with_the_transition() -> None:
    db = FakeDatabase()
    order = an_order(OrderStatus.PAID, order_id="o1")
    db.state.orders["o1"] = order
    db.state.grants["o1"] = Grant("o1", "u1", GrantState.GRANTED, 0)
    committed: list[int] = []
    feed = FeedCommits()
    feed.subscribe(committed.append)
    uow = transactional(db.factory(), lambda: NOW, Policy(), lambda _: Reactors(feed=feed))
    with uow() as work:
        work.record(OrderPaid("o1", "VIP_PLAN"))
    assert db.state.ledger == {"o1": "PENDING"}
    # The feed entry is the transaction's last write; the wake comes after the commit.
    assert [(e.type, e.order.order_id) for e in db.state.feed] == [(FeedType.ORDER_PAID, "o1")]
    assert committed == [0]  # woken once, after the commit


def test_a_rolled_back_transaction_appends_nothing_and_wakes_nobody() -> None:
    db = FakeDatabase()
    db.state.orders["o1"] = an_order(OrderStatus.PAID, order_id="o1")
    committed: list[int] = []
    feed = FeedCommits()
    feed.subscribe(committed.append)
    uow = transactional(db.factory(), lambda: NOW, Policy(), lambda _: Reactors(feed=feed))

    def fail_after_recording() -> None:
        with uow() as work:
            work.record(OrderPaid("o1", "VIP_PLAN"))
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        fail_after_recording()
    assert db.state.feed == []
    assert committed == []


def test_the_refund_a_failed_fulfilment_requests_is_on_the_feed_after_the_failure() -> None:
    db = FakeDatabase()
    db.state.orders["o1"] = an_order(OrderStatus.PAID, order_id="o1", paid_fee=1800)
    uow = transactional(db.factory(), lambda: NOW, Policy())
    with uow() as work:
        work.record(FulfilmentFailed("o1", "no stock"))
    types = [e.type for e in db.state.feed]
    assert types == [FeedType.FULFILMENT_FAILED, FeedType.REFUND_REQUESTED]
    assert db.state.feed[1].refund is not None


def test_a_failing_reaction_rolls_the_whole_transaction_back() -> None:
    def explode(uow: UnitOfWork, event: object, policy: Policy, now: datetime) -> None:
        raise RuntimeError("reaction failed")

    db = FakeDatabase()
    table = {**HANDLERS, OrderFullyRefunded: Reactions(in_transaction=(explode,))}
    uow = transactional(db.factory(), lambda: NOW, Policy(), handlers=table)

    def refund_fully() -> None:
        with uow() as work:
            work.ledger.add("o2", "VIP_PLAN", NOW)
            work.record(OrderFullyRefunded("o2"))

    with pytest.raises(RuntimeError):
        refund_fully()
    assert db.state.ledger == {}  # the write before the event is gone too


def test_after_commit_reactions_run_once_the_outermost_block_committed() -> None:
    fulfilled: list[tuple[str, int]] = []
    db = FakeDatabase()

    class Worker:
        def fulfil(self, order_id: str) -> None:
            fulfilled.append((order_id, db.state.commits))  # what had committed when it ran

    uow = transactional(db.factory(), lambda: NOW, Policy(), lambda _: Reactors(fulfilment=Worker()))
    with uow() as outer:
        with uow() as inner:
            inner.record(OrderPaid("o3", "VIP_PLAN"))
        assert fulfilled == []  # the inner block's commit is not the transaction's
        outer.record(OrderPaid("o4", "VIP_PLAN"))
        assert fulfilled == []
    assert fulfilled == [("o3", 1), ("o4", 1)]  # after the outer commit (the fake swaps state once)


def test_nothing_runs_after_a_rollback() -> None:
    published: list[Event] = []
    db = FakeDatabase()
    uow = transactional(db.factory(), lambda: NOW, Policy(), handlers=recording(HANDLERS, published))

    def fail_after_recording() -> None:
        with uow() as work:
            work.record(OrderPaid("o5", "VIP_PLAN"))
            raise RuntimeError("the use case failed after recording")

    with pytest.raises(RuntimeError):
        fail_after_recording()
    assert (published, db.state.ledger, db.state.commits) == ([], {}, 0)


def test_a_failing_after_commit_reaction_is_logged_and_the_commit_stands() -> None:
    class Broken:
        def fulfil(self, order_id: str) -> None:
            raise ConnectionError("database went away")

    db = FakeDatabase()
    published: list[Event] = []
    uow = transactional(
        db.factory(),
        lambda: NOW,
        Policy(),
        lambda _: Reactors(fulfilment=Broken()),
        recording(HANDLERS, published),
    )
    with structlog.testing.capture_logs() as logs, uow() as work:
        work.record(OrderPaid("o6", "VIP_PLAN"))
    assert db.state.ledger == {"o6": "PENDING"}  # committed, and kept
    assert published == [OrderPaid("o6", "VIP_PLAN")]  # the next reaction still ran
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["event.reaction_failed"]
