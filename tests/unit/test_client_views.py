"""How the CLI renders orders: money, enum names, timestamps."""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from clients.views import enum_label, order_fields, orders_table, timestamp, yuan
from orderpay.v1 import order_pb2


@pytest.mark.parametrize(("fen", "text"), [(0, "¥0.00"), (1, "¥0.01"), (1990, "¥19.90"), (-250, "-¥2.50")])
def test_fen_render_as_yuan(fen: int, text: str) -> None:
    assert yuan(fen) == text


def test_enums_lose_their_type_prefix_and_unknown_values_show_as_numbers() -> None:
    order = order_pb2.Order(
        status=order_pb2.ORDER_STATUS_PARTIALLY_REFUNDED, fulfilment=order_pb2.FULFILMENT_HELD
    )
    future = order_pb2.Order.FromString(b"\x58\x63")  # status = 99, unknown to this build

    assert enum_label(order, "status") == "PARTIALLY_REFUNDED"
    assert enum_label(order, "fulfilment") == "HELD"
    assert enum_label(future, "status") == "99"


def test_unset_timestamps_show_a_dash() -> None:
    order = order_pb2.Order()
    order.paid_at.FromSeconds(0)

    assert timestamp(order, "closed_at") == "-"
    assert timestamp(order, "paid_at") == "1970-01-01T00:00:00+00:00"


def test_order_fields_cover_every_proto_field() -> None:
    order = order_pb2.Order(order_id="o-1", total_fee=500, legacy_status=-1)

    rows = dict(order_fields(order))

    assert list(rows) == [f.name for f in order_pb2.Order.DESCRIPTOR.fields]
    assert (rows["order_id"], rows["total_fee"], rows["legacy_status"]) == ("o-1", "¥5.00", "-1")


def test_empty_page_says_so() -> None:
    out = StringIO()
    Console(file=out, width=120).print(orders_table([]))

    assert "no orders" in out.getvalue()
