"""The handler table: every event has its row, and in-transaction reactions share the transition's fate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import pytest

from server.domain.events import Event, FulfilmentFailed, OrderFullyRefunded, OrderPaid
from server.domain.feed import FeedType
from server.domain.fulfilment import GrantState
from server.domain.order import OrderStatus
from server.service.handlers import HANDLERS, EventBus, Policy, Reactions, Reactors, transactional
from server.service.ports import Grant, UnitOfWork
from tests.support.fake_uow import FakeDatabase
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
    uow = transactional(db.factory(), lambda: NOW, Policy(), feed_committed=committed.append)
    with uow() as work:
        work.record(OrderPaid("o1", "VIP_PLAN"))
    assert db.state.ledger == {"o1": "PENDING"}
    # The feed entry is the transaction's last write; the wake comes after the commit.
    assert [(e.type, e.order.order_id) for e in db.state.feed] == [(FeedType.ORDER_PAID, "o1")]
    assert committed == [1]


def test_a_rolled_back_transaction_appends_nothing_and_wakes_nobody() -> None:
    db = FakeDatabase()
    db.state.orders["o1"] = an_order(OrderStatus.PAID, order_id="o1")
    committed: list[int] = []
    uow = transactional(db.factory(), lambda: NOW, Policy(), feed_committed=committed.append)

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
    uow = transactional(db.factory(), lambda: NOW, Policy(), table)

    def refund_fully() -> None:
        with uow() as work:
            work.ledger.add("o2", "VIP_PLAN", NOW)
            work.record(OrderFullyRefunded("o2"))

    with pytest.raises(RuntimeError):
        refund_fully()
    assert db.state.ledger == {}  # the write before the event is gone too


def test_after_commit_reactions_run_the_events_they_produce() -> None:
    fulfilled: list[str] = []

    class Worker:
        def fulfil(self, order_id: str) -> list[Event]:
            fulfilled.append(order_id)
            return [OrderPaid("again", "VIP_PLAN")] if order_id == "o3" else []

    EventBus(Reactors(fulfilment=Worker())).publish([OrderPaid("o3", "VIP_PLAN")])
    assert fulfilled == ["o3", "again"]


def test_a_failing_after_commit_reaction_is_logged_not_raised() -> None:
    class Broken:
        def fulfil(self, order_id: str) -> list[Event]:
            raise ConnectionError("database went away")

    EventBus(Reactors(fulfilment=Broken())).publish([OrderPaid("o4", "VIP_PLAN")])  # the job retries
