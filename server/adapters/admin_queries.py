"""The operator's read side: orders across users, one order's whole story, what needs a human.

Read-only queries over the existing tables, run on committed data outside the writers' queue, on the
hot standby when one is configured (a ReadRoute: nothing here decides a write). Orders page newest
first by keyset (created_at, id) like ListOrders; the page token is that position, opaque.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import peewee as pw

from server.adapters.admin_shapes import (
    Attention,
    EventView,
    FulfilmentView,
    GrantView,
    NotificationView,
    OrderFilter,
    OrdersPage,
    OrderStory,
    decode_token,
    encode_token,
)
from server.adapters.attention import failing_notification, needs_a_human, stuck_refund
from server.adapters.notification_store import stored_headers
from server.adapters.read_routing import ReadRoute
from server.adapters.recon_tables import ReconExceptionRow
from server.adapters.repositories import PeeweeRefunds, order_from_row
from server.adapters.tables import (
    FulfilmentRow,
    GrantRow,
    NotificationRow,
    OrderEventRow,
    OrderRow,
    RefundRow,
)
from server.adapters.times import from_db_time, to_db_time
from server.domain.fulfilment import LedgerStatus
from server.domain.order import Fulfilment, Order
from server.domain.pages import clamp_page_size
from server.domain.reconciliation import ExceptionStatus
from server.domain.refund import Refund

MAX_PAGE = 200
P = ParamSpec("P")
R = TypeVar("R")

# (headers, raw body, received_at) -> {"out_trade_no", "out_refund_no", ...} of the decrypted resource,
# or None when it no longer verifies. Supplied by the composition root (server.wxpay owns the keys).
DescribeNotification = Callable[[dict[str, str], str, datetime], dict[str, str] | None]


def _page(limit: int) -> int:
    return clamp_page_size(limit, default=50, maximum=MAX_PAGE)


def _routed(method: Callable[P, R]) -> Callable[P, R]:
    """The whole query on one database the route chose (the standby, or the primary)."""

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        queries = args[0]
        assert isinstance(queries, AdminQueries)  # noqa: S101 - methods only
        return queries.reads.run(lambda: method(*args, **kwargs))

    return run


class AdminQueries:
    def __init__(self, db: pw.Database | ReadRoute, describe: DescribeNotification | None = None) -> None:
        self.reads = db if isinstance(db, ReadRoute) else ReadRoute(db)
        self._describe = describe

    def close(self) -> None:
        self.reads.close()

    # --- orders ----------------------------------------------------------------------------------
    @_routed
    def list_orders(self, where: OrderFilter, page_size: int, page_token: str = "") -> OrdersPage:
        size = clamp_page_size(page_size, default=50, maximum=MAX_PAGE)
        query = OrderRow.select().where(_order_filter(where))
        if page_token:
            at, seq = decode_token(page_token)
            db_at = to_db_time(at)
            query = query.where(
                (OrderRow.created_at < db_at) | ((OrderRow.created_at == db_at) & (OrderRow.id < seq))
            )
        rows = list(query.order_by(OrderRow.created_at.desc(), OrderRow.id.desc()).limit(size + 1))
        orders = [order_from_row(r.__data__) for r in rows[:size]]
        token = ""
        if len(rows) > size:
            last = rows[size - 1]
            token = encode_token(orders[-1].created_at, last.id)
        return OrdersPage(orders, token)

    @_routed
    def get_order(self, order_id: str) -> Order | None:
        row = OrderRow.get_or_none(OrderRow.order_id == order_id)
        return None if row is None else order_from_row(row.__data__)

    @_routed
    def order_story(self, order_id: str, scan_limit: int = 500) -> OrderStory | None:
        row = OrderRow.get_or_none(OrderRow.order_id == order_id)
        if row is None:
            return None
        order = order_from_row(row.__data__)
        events = [
            _event(e)
            for e in OrderEventRow.select()
            .where(OrderEventRow.order_id == order_id)
            .order_by(OrderEventRow.created_at, OrderEventRow._meta.primary_key)
        ]
        refund_rows = RefundRow.select().where(RefundRow.order_id == order_id).order_by(RefundRow.created_at)
        refunds = [r for r in map(PeeweeRefunds().get, (x.out_refund_no for x in refund_rows)) if r]
        ledger = FulfilmentRow.get_or_none(FulfilmentRow.order_id == order_id)
        grants = [_grant(g) for g in GrantRow.select().where(GrantRow.order_id == order_id)]
        candidates = list(
            NotificationRow.select()
            .where(NotificationRow.received_at >= to_db_time(order.created_at - timedelta(minutes=5)))
            .order_by(NotificationRow.received_at)
            .limit(scan_limit)
        )
        refund_nos = {r.out_refund_no for r in refunds}
        notes = [
            n
            for n in map(self._notification, candidates)
            if n.out_trade_no == order.out_trade_no or (n.out_refund_no and n.out_refund_no in refund_nos)
        ]
        recon = self.recon_exceptions(out_trade_no=order.out_trade_no, account=order.account)
        fulfilment = None if ledger is None else _ledger(ledger)
        return OrderStory(order, events, refunds, notes, fulfilment, grants, recon=recon)

    # --- notifications, refunds, background work ---------------------------------------------------
    @_routed
    def list_notifications(
        self,
        *,
        status: str | None = None,
        outcome: str | None = None,
        failing: bool = False,
        limit: int = 50,
        account: str | None = None,
    ) -> list[NotificationView]:
        query = NotificationRow.select()
        if account:  # the account whose keys verified it (migration 0015)
            query = query.where(NotificationRow.account == account)
        if status:
            query = query.where(NotificationRow.status == status)
        if outcome:
            query = query.where(NotificationRow.outcome == outcome)
        if failing:
            query = query.where(failing_notification())
        rows = list(query.order_by(NotificationRow.received_at.desc()).limit(_page(limit)))
        return [self._notification(r) for r in rows]

    @_routed
    def list_refunds(
        self,
        *,
        status: str | None = None,
        stuck: bool = False,
        limit: int = 50,
        now: datetime | None = None,
        account: str | None = None,
    ) -> list[Refund]:
        query = RefundRow.select(RefundRow.out_refund_no)
        if account:  # a refund is its order's account's
            query = query.join(OrderRow, on=(RefundRow.order_id == OrderRow.order_id)).where(
                OrderRow.account == account
            )
        if status:
            query = query.where(RefundRow.status == status)
        if stuck:
            query = query.where(stuck_refund(now))
        nos = [r.out_refund_no for r in query.order_by(RefundRow.created_at.desc()).limit(_page(limit))]
        return [r for r in map(PeeweeRefunds().get, nos) if r is not None]

    @_routed
    def list_fulfilment_jobs(
        self, *, status: str | None = None, limit: int = 50, account: str | None = None
    ) -> list[FulfilmentView]:
        query = FulfilmentRow.select().where(
            FulfilmentRow.status.in_(
                [status] if status else [LedgerStatus.PENDING.value, LedgerStatus.FAILED.value]
            )
        )
        if account:  # the work of one merchant account's orders (issue 18)
            query = query.join(OrderRow, on=(FulfilmentRow.order_id == OrderRow.order_id)).where(
                OrderRow.account == account
            )
        return [_ledger(r) for r in query.order_by(FulfilmentRow.next_attempt_at).limit(_page(limit))]

    @_routed
    def needs_attention(self, now: datetime, limit: int = 50, account: str | None = None) -> Attention:
        """`account`: only that merchant account's orders, refunds, notifications and reconciliation
        exceptions."""
        held = self.list_orders(
            OrderFilter(fulfilment=Fulfilment.HELD.value, needs_attention=True, account=account), limit
        ).orders
        failed = self.list_orders(
            OrderFilter(fulfilment=Fulfilment.FAILED.value, needs_attention=True, account=account), limit
        ).orders
        refunds = self.list_refunds(stuck=True, limit=limit, now=now, account=account)
        notes = self.list_notifications(failing=True, limit=limit, account=account)
        recon = self.recon_exceptions(limit, account=account)
        counts = {
            "held": len(held),
            "failed": len(failed),
            "refunds": len(refunds),
            "notifications": len(notes),
            "recon": len(recon),
        }
        return Attention(held, failed, refunds, notes, recon, counts)

    @_routed
    def recon_exceptions(
        self, limit: int = 50, out_trade_no: str | None = None, account: str | None = None
    ) -> list[dict[str, Any]]:
        """Open reconciliation exceptions (server.service.reconciliation), newest first; of one order
        when `out_trade_no` and `account` are given (its page resolves them), or of one account. Each
        links to its own account's order of that number, never another account's (issue 18)."""
        where = ReconExceptionRow.status == ExceptionStatus.OPEN.value
        if out_trade_no is not None:
            where &= ReconExceptionRow.out_trade_no == out_trade_no
        if account:
            where &= ReconExceptionRow.account == account
        rows = ReconExceptionRow.select().where(where).order_by(ReconExceptionRow.id.desc()).limit(limit)
        found = list(rows)
        trades = {row.out_trade_no for row in found if row.out_trade_no}
        order_ids: dict[tuple[str, str], str] = {}
        if trades:
            pairs = OrderRow.select(OrderRow.account, OrderRow.out_trade_no, OrderRow.order_id).where(
                OrderRow.out_trade_no.in_(list(trades))
            )
            order_ids = {(row.account, row.out_trade_no): row.order_id for row in pairs}
        return [
            {
                "id": row.id,
                "day": row.bill_date,
                "account": row.account,
                "kind": row.kind,
                "out_trade_no": row.out_trade_no,
                "order_id": order_ids.get((row.account, row.out_trade_no)),  # the console's link
                "out_refund_no": row.out_refund_no,
                "local_fen": row.local_fen,
                "remote_fen": row.remote_fen,
                "detail": row.detail,
            }
            for row in found
        ]

    def _notification(self, row: NotificationRow) -> NotificationView:
        received = from_db_time(row.received_at)
        assert received is not None  # noqa: S101 - NOT NULL column
        described: dict[str, str] | None = None
        if self._describe is not None:
            described = self._describe(stored_headers(row), row.body, received)
        return NotificationView(
            notification_id=row.notification_id,
            event_type=row.event_type,
            status=row.status,
            outcome=row.outcome,
            attempts=row.attempts,
            received_at=received,
            processed_at=from_db_time(row.processed_at),
            out_trade_no=(described or {}).get("out_trade_no", ""),
            out_refund_no=(described or {}).get("out_refund_no", ""),
            account=row.account,
        )


def _order_filter(where: OrderFilter) -> pw.Expression:
    clauses: list[pw.Expression] = [OrderRow.id > 0]
    for column, value in (
        (OrderRow.status, where.status),
        (OrderRow.fulfilment, where.fulfilment),
        (OrderRow.product_id, where.product_id),
        (OrderRow.user_id, where.user_id),
        (OrderRow.account, where.account),
    ):
        if value:
            clauses.append(column == value)
    if where.created_from is not None:
        clauses.append(OrderRow.created_at >= to_db_time(where.created_from))
    if where.created_to is not None:
        clauses.append(OrderRow.created_at < to_db_time(where.created_to))
    if where.text:
        text = where.text.strip()
        clauses.append(
            (OrderRow.order_id == text) | (OrderRow.out_trade_no == text) | (OrderRow.transaction_id == text)
        )
    if where.needs_attention:
        clauses.append(needs_a_human())
    expression = clauses[0]
    for clause in clauses[1:]:
        expression = expression & clause
    return expression


def _event(row: OrderEventRow) -> EventView:
    at = from_db_time(row.created_at)
    assert at is not None  # noqa: S101 - NOT NULL column
    return EventView(at, row.field, row.from_value, row.to_value, row.cause, row.actor, row.request_id)


def _ledger(row: FulfilmentRow) -> FulfilmentView:
    return FulfilmentView(
        row.order_id,
        row.kind,
        row.status,
        row.attempts,
        from_db_time(row.next_attempt_at),
        row.last_error,
        from_db_time(row.created_at),
        from_db_time(row.updated_at),
    )


def _grant(row: GrantRow) -> GrantView:
    return GrantView(
        row.kind,
        row.state,
        row.days,
        row.article_id,
        from_db_time(row.created_at),
        from_db_time(row.revoked_at),
    )
