"""`orderpay recon run|show|resolve`: reconcile a Beijing day against WeChat Pay's bills from a shell.

Each merchant account's bills are reconciled on their own (issue 18): without `--account`, every
configured account's, one after the other (one failing leaves the others done). Exit codes: 0 when
nothing but matched rows and repaired (or resolved) exceptions remain, 3 when an exception is open, 2
when an account's day could not be reconciled (bill not ready, WeChat down, bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

from server.domain.text import escape_nonprintable

if TYPE_CHECKING:  # imported lazily at run time: `orderpay --help` stays fast
    from server.domain.errors import DomainError
    from server.service.recon_ports import DayReport
    from server.service.reconciliation import ReconciliationService

EXIT_OPEN_EXCEPTIONS = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recon = sub.add_parser("recon", help="reconcile a day against WeChat Pay's bills (对账)")
    actions = recon.add_subparsers(dest="recon_command", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="download, match and store a day (idempotent)")
    show = actions.add_parser("show", help="print a day's stored report")
    for parser in (run, show):
        parser.add_argument("--date", type=date.fromisoformat, required=True, help="Beijing day, YYYY-MM-DD")
        parser.add_argument("--json", action="store_true", help="machine-readable report")
        parser.add_argument("--account", help="only this merchant account (default: every account)")
    run.set_defaults(func=_run)
    show.set_defaults(func=_show)
    resolve = actions.add_parser("resolve", help="close an open exception with a reason (audited)")
    resolve.add_argument("exception_id", type=int, help="the exception's id (`recon show --date D`)")
    resolve.add_argument("--reason", required=True, help="why it is closed; goes into the audit trail")
    resolve.set_defaults(func=_resolve)


def _service() -> ReconciliationService:
    from server.bootstrap import build_app  # noqa: PLC0415 - keep `orderpay --help` light
    from server.config import load_settings  # noqa: PLC0415
    from server.log_setup import configure_logging  # noqa: PLC0415

    settings = load_settings()
    configure_logging(settings.log_format, "warning")  # logs on stderr; stdout is the report
    # A missing credentials bundle is a one-line ConfigError from the composition root.
    part = build_app(settings).payments
    if part is None:  # unreachable: payments_required (the default) raises first
        raise SystemExit(
            "orderpay: reconciliation needs the WeChat Pay credentials (ORDERPAY_CREDENTIALS_DIR)"
        )
    return part.reconciliation


def _guarded(action: Callable[[], int]) -> int:
    from server.domain.errors import DomainError  # noqa: PLC0415

    try:
        return action()
    except DomainError as exc:
        _say(exc)
        return 2


def _say(exc: DomainError, account: str = "") -> None:
    detail = exc.metadata.get("provider_code", exc.reason)
    where = f"{account}: " if account else ""
    print(escape_nonprintable(f"orderpay: {where}{exc.message} ({detail})"), file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    """Each account on its own: one whose bill cannot be had is one line on stderr, the others run."""
    from server.domain.errors import DomainError  # noqa: PLC0415

    def run() -> int:
        service = _service()
        accounts = [args.account] if args.account else list(service.accounts)
        failed = False
        for account in accounts:
            try:
                service.run_day(args.date, account=account)
            except DomainError as exc:
                failed = True
                _say(exc, account if len(service.accounts) > 1 else "")
        code = print_report(service.report(args.date, args.account), as_json=args.json)
        return 2 if failed else code

    return _guarded(run)


def _show(args: argparse.Namespace) -> int:
    return _guarded(lambda: print_report(_service().report(args.date, args.account), as_json=args.json))


def _resolve(args: argparse.Namespace) -> int:
    from server.service.context import Caller  # noqa: PLC0415

    def resolve() -> int:
        exception = _service().resolve(args.exception_id, args.reason, Caller("cli:admin"))
        print(
            escape_nonprintable(f"exception #{exception.id} {exception.kind.value} resolved: {args.reason}")
        )
        return 0

    return _guarded(resolve)


def report_json(report: DayReport) -> dict[str, Any]:
    """One account's day; every account's together adds `accounts`, each of them in this shape."""
    summary = report.summary
    totals = summary.totals
    data: dict[str, Any] = {
        "date": report.bill_date.isoformat(),
        "account": report.account,
        "status": summary.status,
        "error": summary.error,
        "bill_rows": summary.bill_rows,
        "matched": summary.matched,
        "repaired": report.repaired,
        "deferred": summary.deferred,
        "fund_flow": {
            "payments_fen": totals.payments_fen,
            "refunds_fen": totals.refunds_fen,
            "fees_fen": totals.fees_fen,
            "income_fen": totals.fund_income_fen,
            "expense_fen": totals.fund_expense_fen,
        },
        "exceptions": [
            {
                "id": e.id,
                "account": e.account,
                "kind": e.kind.value,
                "status": e.status.value,
                "out_trade_no": e.out_trade_no,
                "out_refund_no": e.out_refund_no,
                "local_fen": e.local_fen,
                "remote_fen": e.remote_fen,
                "detail": e.detail,
            }
            for e in report.exceptions
        ],
    }
    if report.parts:
        data["accounts"] = [report_json(part) for part in report.parts]
    return data


def print_report(report: DayReport, *, as_json: bool) -> int:
    data = report_json(report)
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(render(data))
    return 0 if report.clean else EXIT_OPEN_EXCEPTIONS


def _yuan(fen: int | None) -> str:
    return "-" if fen is None else f"{fen / 100:,.2f}"


def _money(fen: int | None) -> str:
    from server.domain.money import yuan  # noqa: PLC0415 - keep `orderpay --help` light

    return "-" if fen is None else yuan(fen)


def render(data: dict[str, Any]) -> str:
    """Every account's day: each account's report in turn, under the day's totals."""
    if "accounts" not in data:
        return _render_one(data)
    head = _render_one(data).splitlines()[:3]  # the day across accounts; exceptions under each
    parts = [_render_one(part) for part in data["accounts"]]
    return "\n".join([*head, *parts])


def _render_one(data: dict[str, Any]) -> str:
    flow = data["fund_flow"]
    opened = sum(1 for e in data["exceptions"] if e["status"] == "OPEN")
    whose = f"account {data['account']}" if data.get("account") else "every account"
    lines = [
        f"reconciliation of {data['date']} (Beijing day): {data['status']} · {whose}",
        f"  bill rows {data['bill_rows']} · matched {data['matched']} · repaired {data['repaired']}"
        f" · deferred to the next day {data['deferred']} · open {opened}",
        f"  trade bill: payments {_yuan(flow['payments_fen'])} · refunds {_yuan(flow['refunds_fen'])}"
        f" · fees {_yuan(flow['fees_fen'])} 元; fund flow: in {_yuan(flow['income_fen'])}"
        f" · out {_yuan(flow['expense_fen'])} 元",
    ]
    if data["error"]:
        lines.append(f"  last run failed: {data['error']}")
    if data["exceptions"]:
        lines.append("  exceptions:")
    for e in data["exceptions"]:
        key = e["out_refund_no"] or e["out_trade_no"] or "-"
        lines.append(
            f"    #{e['id']:<5} {e['kind']:<22} {e['status']:<9} {key:<34}"
            f" ours {_money(e['local_fen'])} · WeChat {_money(e['remote_fen'])}  {e['detail']}"
        )
    # Ids and details come from bills and operators: never let one drive the operator's terminal.
    return "\n".join(escape_nonprintable(line) for line in lines)
