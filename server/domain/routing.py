"""Which merchant account takes an order: decided once, at create, and stored on the order.

The rule lives in configuration (`ORDERPAY_ACCOUNT_ROUTES`, `ORDERPAY_DEFAULT_ACCOUNT`): the BFF's
`merchant` hint if it sends one, else the product's account, else the default. The app within the
account is not decided here: the payment channel decides it when the order is paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from server.domain.errors import FieldViolation, InvalidArgumentError

DEFAULT_ACCOUNT = "default"  # what every order created before accounts existed is stored under


@dataclass(frozen=True)
class AccountRouter:
    default: str = DEFAULT_ACCOUNT
    by_product: Mapping[str, str] = field(default_factory=dict)
    known: frozenset[str] = frozenset({DEFAULT_ACCOUNT})

    def route(self, product_id: str, hint: str | None) -> str:
        if hint:
            if hint not in self.known:
                problem = f"{hint!r} is not a configured account"
                raise InvalidArgumentError([FieldViolation("merchant", problem)])
            return hint
        return self.by_product.get(product_id, self.default)


def parse_routes(text: str) -> dict[str, str]:
    """`product_id=account,product_id=account` (ORDERPAY_ACCOUNT_ROUTES); raises ValueError."""
    routes: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        product, sep, account = (part.strip() for part in pair.partition("="))
        if not sep or not product or not account:
            raise ValueError(f"want product_id=account pairs, got {pair!r}")
        routes[product] = account
    return routes
