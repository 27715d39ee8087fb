"""The attention page's reconciliation exceptions read like the other tables: named columns, yuan, a link
to the order, and the command that resolves each one (not raw field names and fen)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from server.adapters.recon_tables import ReconExceptionRow
from tests.support.console_stack import ADMIN_TOKEN, LiveStack, live_stack, sign_in


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("console-recon")) as running:
        yield running


def test_an_open_exception_shows_yuan_a_link_and_how_to_resolve_it(live: LiveStack) -> None:
    order = live.held_order()
    now = datetime.now(UTC).replace(tzinfo=None)
    with live.stack.app.db.connection_context():
        row = ReconExceptionRow.create(
            bill_date="2026-12-07", kind="AMOUNT_MISMATCH", out_trade_no=order.out_trade_no,
            out_refund_no="", local_fen=1800, remote_fen=1799, status="OPEN",
            detail="paid " + secrets.token_hex(3), created_at=now, updated_at=now,
        )  # fmt: skip

    with httpx.Client(base_url=live.console_url) as client:
        sign_in(client, ADMIN_TOKEN)
        page = client.get("/attention").text

    section = page[page.index('id="recon"') :]
    assert "local_fen" not in section
    assert "remote_fen" not in section
    assert "¥18.00" in section
    assert "¥17.99" in section
    assert f'href="/orders/{order.order_id}"' in section
    assert re.search(rf"orderpay recon resolve {row.id} --reason", section)
    assert 'action="/actions/resolve-recon"' in section  # and a form that does it
