"""The catalogue: what can be bought, and at what price."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from server.domain.errors import FieldViolation, InvalidArgumentError
from server.domain.validation import MAX_QUANTITY

MAX_ORDER_FEN = 2**31 - 1  # WeChat Pay's amount.total (int32 fen)


class ProductKind(StrEnum):
    VIP_PLAN = "VIP_PLAN"
    ARTICLE = "ARTICLE"
    GOODS = "GOODS"
    EXTERNAL = "EXTERNAL"  # fulfilled by the business's own system, through the event feed


@dataclass(frozen=True)
class Product:
    product_id: str
    kind: ProductKind
    title: str
    description: str
    price_fen: int
    stock: int | None = None  # None = unlimited
    duration_days: int | None = None
    active: bool = True

    def total_fee(self, quantity: int) -> int:
        """The server's price: never taken from the client."""
        return self.price_fen * quantity


def product_from_mapping(raw: dict[str, object]) -> Product:
    """Validate one catalogue entry from the shipped data file."""
    try:
        kind = ProductKind(str(raw["kind"]))
        product = Product(
            product_id=str(raw["product_id"]),
            kind=kind,
            title=str(raw["title"]),
            description=str(raw.get("description", "")),
            price_fen=_int(raw["price_fen"]),
            stock=None if raw.get("stock") is None else _int(raw["stock"]),
            duration_days=None if raw.get("duration_days") is None else _int(raw["duration_days"]),
            active=bool(raw.get("active", True)),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidArgumentError([FieldViolation("catalogue", f"bad entry {raw!r}: {exc}")]) from exc
    problems = _problems(product)
    if problems:
        raise InvalidArgumentError([FieldViolation(f"catalogue.{product.product_id}", p) for p in problems])
    return product


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _problems(p: Product) -> list[str]:
    problems = []
    if not p.product_id or len(p.product_id) > 64:
        problems.append("product_id must be 1-64 characters")
    if p.price_fen <= 0:
        problems.append("price_fen must be positive")
    elif p.price_fen * MAX_QUANTITY > MAX_ORDER_FEN:
        # WeChat Pay's amount.total is an int32 of fen: the largest order must still fit.
        problems.append(f"price_fen × {MAX_QUANTITY} must not exceed {MAX_ORDER_FEN} fen")
    if p.stock is not None and p.stock < 0:
        problems.append("stock must be >= 0 or null")
    if p.kind is ProductKind.VIP_PLAN and not (p.duration_days and p.duration_days > 0):
        problems.append("VIP plans need duration_days > 0")
    return problems
