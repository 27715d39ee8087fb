"""`orderpay sandbox trigger EVENT` against the whole stack in one process (sandbox, gRPC, sidecar, jobs):
each event ends where a payments engineer expects it to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from clients.cli import main
from tests.support.console_stack import ADMIN_TOKEN, LiveStack, live_stack


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("trigger")) as running:
        yield running


def trigger(live: LiveStack, capsys: pytest.CaptureFixture[str], event: str, *extra: str) -> dict[str, Any]:
    capsys.readouterr()
    args = ["sandbox", "trigger", event, "--sandbox-url", live.sandbox.base_url, "--target", live.grpc_target]
    code = main([*args, "--token", ADMIN_TOKEN, "--json", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    document, _ = json.JSONDecoder().raw_decode(out[out.index('{\n  "event"') :])
    assert isinstance(document, dict)
    return document


def answers(result: dict[str, Any], kind: str = "delivery", event: str = "TRANSACTION.SUCCESS") -> list[int]:
    return [d["status"] for d in result["deliveries"] if d["kind"] == kind and d["event_type"] == event]


def test_transaction_success(live: LiveStack, capsys: pytest.CaptureFixture[str]) -> None:
    result = trigger(live, capsys, "transaction.success")
    assert (result["status"], result["fulfilment"]) == ("PAID", "SUCCEEDED")
    assert answers(result) == [204]


@pytest.mark.parametrize(
    ("event", "refund_status", "order_status"),
    [
        ("refund.success", "SUCCESS", "REFUNDED"),
        ("refund.abnormal", "ABNORMAL", "PAID"),
        ("refund.closed", "CLOSED", "PAID"),
    ],
)
def test_refund_outcomes(
    live: LiveStack, capsys: pytest.CaptureFixture[str], event: str, refund_status: str, order_status: str
) -> None:
    result = trigger(live, capsys, event)
    assert (result["refund_status"], result["status"]) == (refund_status, order_status)


def test_a_duplicate_storm_fulfils_once(live: LiveStack, capsys: pytest.CaptureFixture[str]) -> None:
    result = trigger(live, capsys, "duplicate", "--copies", "6")
    assert answers(result) == [204] * 7
    assert result["fulfilment"] == "SUCCEEDED"
    story = live.stack.app.admin.order_story(result["order_id"])
    assert [g.state for g in story.grants] == ["GRANTED"]


def test_a_late_payment_after_close_is_kept_held_and_refunded(
    live: LiveStack, capsys: pytest.CaptureFixture[str]
) -> None:
    result = trigger(live, capsys, "late-payment")
    assert (result["status"], result["fulfilment"]) == ("CLOSED", "HELD")
    assert result["fulfilment_reason"].startswith("PAID_AFTER_CLOSE")
    assert answers(result) == [204]
    story = live.stack.app.admin.order_story(result["order_id"])
    assert [r.out_refund_no[:2] for r in story.refunds] == ["PC"]  # refunded automatically


def test_a_signtest_probe_is_refused_and_the_real_one_applied(
    live: LiveStack, capsys: pytest.CaptureFixture[str]
) -> None:
    result = trigger(live, capsys, "signtest")
    (probe,) = answers(result, "signtest")
    assert 400 <= probe < 500
    assert answers(result) == [204]
    assert result["status"] == "PAID"
