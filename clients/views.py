"""Renderings of orders for the CLI: money in yuan, enums by short name, times in UTC; and as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.table import Table

from clients.console import fits
from orderpay.v1 import order_pb2

INTEGER_TYPES = (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64)


def printable(text: str) -> str:
    """Stored text may predate the server's control-character rule, or come from WeChat: anything not
    printable is shown as its Python escape (`\\x1b`, `\\u202e`), never sent raw to the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def orders_view(orders: Sequence[order_pb2.Order], console: Console) -> Table:
    """The one-row-per-order table when it fits the console, else two columns per order that do."""
    table = orders_table(orders)
    return table if fits(console, table) else orders_stacked(orders)


def orders_table(orders: Sequence[order_pb2.Order]) -> Table:
    """A page of orders as a table: the columns an operator scans first, one line each."""
    table = Table(title=None if orders else "no orders")
    headers = ("order id", "account", "product", "qty", "total", "status", "fulfilment", "created (UTC)")
    for header in headers:
        table.add_column(header, no_wrap=True, justify="right" if header in {"qty", "total"} else "left")
    for order in orders:
        table.add_row(
            order.order_id,
            order.account,
            order.product_id,
            str(order.quantity),
            yuan(order.total_fee),
            enum_label(order, "status"),
            enum_label(order, "fulfilment"),
            short_time(order, "created_at"),
        )
    return table


def orders_stacked(orders: Sequence[order_pb2.Order]) -> Table:
    """For a narrow terminal: the id, then what the wide table's other columns say, line by line."""
    table = Table(title=None if orders else "no orders", show_lines=True)
    table.add_column("order id", no_wrap=True)
    table.add_column("account / product / status / created (UTC)")
    for order in orders:
        table.add_row(
            order.order_id,
            f"{order.account}: {order.product_id} ×{order.quantity}  {yuan(order.total_fee)}\n"
            f"{enum_label(order, 'status')}, fulfilment {enum_label(order, 'fulfilment')}\n"
            f"{short_time(order, 'created_at')}",
        )
    return table


def order_json(order: order_pb2.Order) -> dict[str, Any]:
    """Every field, named as in the proto; enums by name, 64-bit integers as numbers, times as RFC 3339."""
    data = MessageToDict(order, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    for field in order.DESCRIPTOR.fields:
        if field.type in INTEGER_TYPES and field.name in data:
            data[field.name] = int(data[field.name])
    return data


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
            rows.append((name, printable(str(getattr(order, name)))))
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


def short_time(order: order_pb2.Order, name: str) -> str:
    """`2026-11-25 10:03:17` (UTC, said in the column header): complete, and narrower than ISO."""
    if not order.HasField(name):  # type: ignore[arg-type]
        return "-"
    return str(getattr(order, name).ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S"))


def timestamp(order: order_pb2.Order, name: str) -> str:
    if not order.HasField(name):  # type: ignore[arg-type]
        return "-"
    stamp = getattr(order, name).ToDatetime(tzinfo=UTC)
    return str(stamp.isoformat(timespec="seconds"))
