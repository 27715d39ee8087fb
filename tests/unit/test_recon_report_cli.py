"""`orderpay recon` output: the JSON shape the issue asks for, the text report, and the exit codes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from server.domain.reconciliation import ExceptionKind, ExceptionStatus
from server.recon_commands import EXIT_OPEN_EXCEPTIONS, print_report, render, report_json
from server.service.recon_ports import DayReport, DayTotals, ReconException, RunSummary

DAY = date(2026, 3, 9)
WHEN = datetime(2026, 3, 10, 2, tzinfo=UTC)


def exception(kind: ExceptionKind, status: ExceptionStatus, number: int) -> ReconException:
    return ReconException(number, DAY, kind, f"OP{number}", "", 1800, 1805, status, "", "", "", 1, WHEN, WHEN)


def report(*exceptions: ReconException) -> DayReport:
    summary = RunSummary("DONE", "ab" * 20, None, 4, 3, 0, DayTotals(5405, 600, 29, 5405, 629), WHEN)
    return DayReport(DAY, summary, list(exceptions))


def test_json_has_the_fields_the_issue_names() -> None:
    data = report_json(report(exception(ExceptionKind.AMOUNT_MISMATCH, ExceptionStatus.OPEN, 1)))
    assert {"date", "bill_rows", "matched", "repaired", "exceptions"} <= set(data)
    (item,) = data["exceptions"]
    assert {"kind", "out_trade_no", "out_refund_no", "local_fen", "remote_fen"} <= set(item)
    assert (data["date"], item["kind"], item["remote_fen"]) == ("2026-03-09", "AMOUNT_MISMATCH", 1805)


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ((), 0),
        ((ExceptionStatus.REPAIRED,), 0),
        ((ExceptionStatus.RESOLVED,), 0),
        ((ExceptionStatus.REPAIRED, ExceptionStatus.OPEN), EXIT_OPEN_EXCEPTIONS),
    ],
)
def test_exit_code_is_3_while_anything_is_open(
    statuses: tuple[ExceptionStatus, ...], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    found = [exception(ExceptionKind.MISSING_LOCAL, s, n) for n, s in enumerate(statuses, start=1)]
    assert print_report(report(*found), as_json=True) == code
    assert len(json.loads(capsys.readouterr().out)["exceptions"]) == len(statuses)


def test_text_report() -> None:
    text = render(report_json(report(exception(ExceptionKind.MISSING_REMOTE, ExceptionStatus.OPEN, 7))))
    assert "reconciliation of 2026-03-09 (Beijing day): DONE" in text
    assert "payments 54.05 · refunds 6.00 · fees 0.29 元" in text
    assert "#7     MISSING_REMOTE" in text
    assert "OP7" in text
