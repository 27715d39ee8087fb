"""Rich renderings of orders for the CLI: money in yuan, enums by short name, times in UTC."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from rich.table import Table

from orderpay.v1 import order_pb2


def orders_table(orders: Sequence[order_pb2.Order]) -> Table:
    """A page of orders as a table: the columns an operator scans first."""
    table = Table(title=None if orders else "no orders")
    for header in ("order id", "product", "qty", "total", "status", "fulfilment", "created"):
        table.add_column(header, no_wrap=header == "order id")
    for order in orders:
        table.add_row(
            order.order_id,
            order.product_id,
            str(order.quantity),
            yuan(order.total_fee),
            enum_label(order, "status"),
            enum_label(order, "fulfilment"),
            timestamp(order, "created_at"),
        )
    return table


def order_view(order: order_pb2.Order) -> Table:
    """Every field of an order as `name  value` rows, money in yuan and enums by short name."""
    view = Table.grid(padding=(0, 2))
    view.add_column(style="bold")
    view.add_column()
    for name, value in order_fields(order):
        view.add_row(name, value)
    return view


def order_fields(order: order_pb2.Order) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for field in order.DESCRIPTOR.fields:
        name = field.name
        if field.message_type is not None:
            rows.append((name, timestamp(order, name)))
        elif field.enum_type is not None:
            rows.append((name, enum_label(order, name)))
        elif name.endswith("_fee"):
            rows.append((name, yuan(getattr(order, name))))
        else:
            rows.append((name, str(getattr(order, name))))
    return rows


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole}.{cents:02d}"


def enum_label(order: order_pb2.Order, name: str) -> str:
    """`ORDER_STATUS_PAID` -> `PAID`: the enum's name without its type prefix."""
    enum_type = order.DESCRIPTOR.fields_by_name[name].enum_type
    if enum_type is None:
        raise TypeError(f"Order.{name} is not an enum")
    number = getattr(order, name)
    value = enum_type.values_by_number.get(number)
    if value is None:  # a value added to the proto after this client was built
        return str(number)
    prefix = enum_type.values[0].name.removesuffix("UNSPECIFIED")
    return value.name.removeprefix(prefix)


def timestamp(order: order_pb2.Order, name: str) -> str:
    if not order.HasField(name):  # type: ignore[arg-type]
        return "-"
    stamp = getattr(order, name).ToDatetime(tzinfo=UTC)
    return str(stamp.isoformat(timespec="seconds"))
