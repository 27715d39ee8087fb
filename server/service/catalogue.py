"""Catalogue and VIP use cases: load the data file, list plans, read memberships."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from server.domain.catalogue import Product, ProductKind, product_from_mapping
from server.domain.clock import Clock
from server.domain.errors import FieldViolation, InvalidArgumentError
from server.domain.membership import Membership
from server.domain.validation import Violations
from server.service.ports import ReadFactory, UnitOfWorkFactory

SHIPPED_CATALOGUE = Path(__file__).resolve().parents[1] / "data" / "catalogue.json"


def default_catalogue_text() -> str:
    return SHIPPED_CATALOGUE.read_text(encoding="utf-8")


def parse_catalogue(text: str) -> list[Product]:
    try:
        raw = json.loads(text)
        entries = raw["products"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError([FieldViolation("catalogue", f"not a catalogue file: {exc}")]) from exc
    products = [product_from_mapping(entry) for entry in entries]
    ids = [p.product_id for p in products]
    if len(set(ids)) != len(ids):
        raise InvalidArgumentError([FieldViolation("catalogue", "duplicate product_id")])
    return products


@dataclass(frozen=True)
class LoadReport:
    inserted: int
    updated: int


@dataclass(frozen=True)
class MembershipView:
    user_id: str
    expires_at: datetime | None
    active: bool
    version: int


class CatalogueService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, read: ReadFactory | None = None) -> None:
        self._uow = uow
        self._read: ReadFactory = read or uow
        self._clock = clock

    def load(self, products: list[Product]) -> LoadReport:
        inserted = 0
        with self._uow() as uow:
            for product in products:
                inserted += uow.products.upsert(product, self._clock())
        return LoadReport(inserted=inserted, updated=len(products) - inserted)

    def load_file(self, path: Path | None = None) -> LoadReport:
        text = default_catalogue_text() if path is None else path.read_text(encoding="utf-8")
        return self.load(parse_catalogue(text))

    def list_plans(self) -> list[Product]:
        with self._read() as uow:
            return uow.products.list_active(ProductKind.VIP_PLAN.value)

    def get_membership(self, user_id: str) -> MembershipView:
        v = Violations()
        v.identifier("user_id", user_id)
        v.raise_if_any()
        with self._read() as uow:
            membership = uow.memberships.get(user_id) or Membership(user_id, None)
        now = self._clock()
        return MembershipView(user_id, membership.expires_at, membership.is_active(now), membership.version)
