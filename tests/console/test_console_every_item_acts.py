"""Every item in "Needs attention" has an action in the console: an ABNORMAL refund is sent another way
from its order page (the use case of `ops resolve-abnormal`), a reconciliation exception is resolved
from the attention page or its order's page, and no order the queue names says "Nothing to do by hand".
Over HTTP against the whole stack (sandbox, jobs, console), as an operator's browser would post."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import httpx
import pytest

from server.adapters.recon_tables import ReconExceptionRow
from server.domain.order import Fulfilment
from server.domain.refund import RefundStatus
from server.service.context import Caller
from tests.support.builders import a_paid_order, a_refund
from tests.support.console_stack import ADMIN_TOKEN, LiveStack, live_stack, sign_in

BFF = Caller("bff", "test")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("console-acts")) as running:
        yield running


@pytest.fixture
def admin(live: LiveStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.console_url) as client:
        sign_in(client, ADMIN_TOKEN)
        yield client


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def actions_of(page: str) -> str:
    return page[page.index("Actions") : page.index('id="timeline"')]


def test_an_abnormal_refund_is_sent_another_way_from_its_order_page(
    live: LiveStack, admin: httpx.Client
) -> None:
    order = live.paid_order()
    no = live.abnormal_refund(order)
    assert no in {
        r.out_refund_no for r in live.stack.app.admin.needs_attention(live.stack.app.clock()).refunds
    }

    page = admin.get(f"/orders/{order.order_id}").text
    actions = actions_of(page)
    assert f'id="abnormal-{no}"' in actions
    assert 'action="/actions/resolve-abnormal"' in actions
    assert "Nothing to do by hand" not in actions
    note = "card closed; paid by hand, ticket " + secrets.token_hex(3)
    done = admin.post(
        "/actions/resolve-abnormal",
        data={
            "csrf": csrf(page), "out_refund_no": no, "order_id": order.order_id,
            "route": "MERCHANT_BANK_CARD", "reason": note, "confirm": "yes",
        },
    )  # fmt: skip
    assert done.status_code == 200, done.text
    assert f"refund {no} of ¥18.00 is" in done.text

    refund = live.stack.app.payments.refunds.get_refund(no, False, BFF)  # type: ignore[union-attr]
    assert refund.status in (RefundStatus.PROCESSING, RefundStatus.SUCCESS)
    story = live.stack.app.admin.order_story(order.order_id)
    assert story is not None
    audited = [e for e in story.events if note in e.cause]
    assert [e.cause for e in audited] == [f"abnormal refund sent to MERCHANT_BANK_CARD: {note}"]
    assert audited[0].actor.startswith("admin@console")
    again = admin.post(
        "/actions/resolve-abnormal",
        data={
            "csrf": csrf(page), "out_refund_no": no, "order_id": order.order_id,
            "route": "MERCHANT_BANK_CARD", "reason": "again", "confirm": "yes",
        },
    )  # fmt: skip
    assert again.status_code == 409  # no longer ABNORMAL: refused, not sent twice


def test_the_resolve_abnormal_form_needs_its_csrf_token(live: LiveStack, admin: httpx.Client) -> None:
    refused = admin.post(
        "/actions/resolve-abnormal",
        data={
            "out_refund_no": "RABX", "order_id": "x", "route": "MERCHANT_BANK_CARD",
            "reason": "r", "confirm": "yes",
        },
    )  # fmt: skip
    assert refused.status_code == 403


def test_a_recon_exception_is_resolved_from_its_order_page(live: LiveStack, admin: httpx.Client) -> None:
    order = live.paid_order()
    exception_id = live.recon_exception(order)

    page = admin.get(f"/orders/{order.order_id}").text
    actions = actions_of(page)
    assert f'id="recon-{exception_id}"' in actions
    assert "ours ¥18.00, WeChat’s ¥17.99" in actions
    note = "bill corrected by WeChat support " + secrets.token_hex(3)
    done = admin.post(
        "/actions/resolve-recon",
        data={
            "csrf": csrf(page), "exception_id": str(exception_id), "order_id": order.order_id,
            "reason": note, "confirm": "yes",
        },
    )  # fmt: skip
    assert done.status_code == 200, done.text
    assert f"exception #{exception_id} AMOUNT_MISMATCH resolved" in done.text

    with live.stack.app.db.connection_context():
        row = ReconExceptionRow.get_by_id(exception_id)
    assert (row.status, row.resolution) == ("RESOLVED", note)
    assert row.resolved_by.startswith("admin@console")
    assert exception_id not in {
        x["id"] for x in live.stack.app.admin.needs_attention(live.stack.app.clock()).recon
    }
    assert f'id="recon-{exception_id}"' not in admin.get(f"/orders/{order.order_id}").text


def test_every_order_the_queue_names_has_an_action_on_its_page(live: LiveStack, admin: httpx.Client) -> None:
    """HELD (paid short), a FAILED fulfilment, a refund nobody polls, an ABNORMAL refund, a
    reconciliation exception: each order's page has a form that acts on it."""
    app = live.stack.app
    live.held_order()
    live.abnormal_refund(live.paid_order())
    live.recon_exception(live.paid_order())
    failed = a_paid_order(app.clock(), fulfilment=Fulfilment.FAILED, fulfilment_reason="grant service down")
    unpolled = a_paid_order(app.clock(), fulfilment=Fulfilment.SUCCEEDED)
    with app.uow() as uow:
        uow.orders.insert(failed)
        uow.orders.insert(unpolled)
        uow.refunds.insert(a_refund(unpolled, RefundStatus.PROCESSING), due_at=None)  # polling revoked
    queue = live.stack.app.admin.needs_attention(live.stack.app.clock(), limit=200)
    named = (
        {o.order_id for o in [*queue.held, *queue.failed]}
        | {r.order_id for r in queue.refunds}
        | {x["order_id"] for x in queue.recon if x["order_id"]}
    )
    assert {failed.order_id, unpolled.order_id} <= named
    assert len(named) >= 5
    for order_id in sorted(named):
        actions = actions_of(admin.get(f"/orders/{order_id}").text)
        assert 'method="post" action="/actions/' in actions, order_id
        assert "Nothing to do by hand" not in actions, order_id
