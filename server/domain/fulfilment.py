"""Fulfilment rules: the ledger's states, what each product kind grants, and the retry schedule.

Per-kind handlers decide what to grant and say it through `GrantWriter`; the worker
(server.service.fulfilment) supplies one bound to the unit of work, so a grant and its ledger row
commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from server.domain.catalogue import Product, ProductKind
from server.domain.order import Order


class LedgerStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class GrantState(StrEnum):
    GRANTED = "GRANTED"
    READY_TO_SHIP = "READY_TO_SHIP"
    REVOKED = "REVOKED"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"  # failed, another attempt is scheduled
    FAILED = "failed"  # out of attempts: FAILED, refund requested
    ABANDONED = "abandoned"  # the order can no longer be fulfilled (refunded, held): nothing granted
    LOST = "lost"  # another worker took the row meanwhile
    NOT_DUE = "not_due"  # nothing to claim: done, not due yet, or claimed elsewhere
    REQUESTED = "requested"  # EXTERNAL: the business was asked (again) to fulfil; it answers by RPC


@dataclass(frozen=True)
class FulfilmentClaim:
    order_id: str
    kind: str
    version: int  # the ledger row's version after the claim: the compare-and-set token
    attempts: int  # attempts made before this one


class GrantWriter(Protocol):
    def record_grant(
        self, order: Order, state: GrantState, *, article_id: str | None = None, days: int = 0
    ) -> None: ...
    def extend_membership(self, user_id: str, days: int) -> datetime: ...


@dataclass(frozen=True)
class FulfilmentContext:
    order: Order
    product: Product | None
    now: datetime
    grants: GrantWriter


Handler = Callable[[FulfilmentContext], str]  # runs inside the transaction; returns what it granted


class FulfilmentError(Exception):
    """A handler cannot grant; the attempt counts as failed and is retried."""


def fulfil_vip(ctx: FulfilmentContext) -> str:
    if ctx.product is None or not ctx.product.duration_days:
        raise FulfilmentError(f"product {ctx.order.product_id!r} has no duration_days")
    days = ctx.product.duration_days * ctx.order.quantity
    expires_at = ctx.grants.extend_membership(ctx.order.user_id, days)
    ctx.grants.record_grant(ctx.order, GrantState.GRANTED, days=days)
    return f"VIP +{days}d, until {expires_at.isoformat()}"


def fulfil_article(ctx: FulfilmentContext) -> str:
    article_id = ctx.order.article_id or ctx.order.product_id
    ctx.grants.record_grant(ctx.order, GrantState.GRANTED, article_id=article_id)
    return f"access to {article_id}"


def fulfil_goods(ctx: FulfilmentContext) -> str:
    ctx.grants.record_grant(ctx.order, GrantState.READY_TO_SHIP)
    return "ready to ship"


DEFAULT_HANDLERS: Mapping[str, Handler] = {
    ProductKind.VIP_PLAN: fulfil_vip,
    ProductKind.ARTICLE: fulfil_article,
    ProductKind.GOODS: fulfil_goods,
}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_s: float = 30.0
    max_s: float = 1800.0
    jitter: float = 0.1  # added on top only, so the schedule never gets shorter than stated
    lease_s: float = 60.0  # a claimed row stays invisible this long; a crashed worker's comes back

    def delay(self, failures: int, unit_random: float) -> timedelta:
        """After the n-th failure: min(base * 2^(n-1), max), plus up to `jitter` of that."""
        capped = min(self.base_s * 2 ** (failures - 1), self.max_s)
        return timedelta(seconds=capped * (1 + self.jitter * unit_random))

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_s)
