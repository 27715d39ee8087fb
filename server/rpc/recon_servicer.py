"""ReconService (admin only): a day's report, open exceptions, resolving one with a reason.

Proto in, one use case, proto out; a plain class, so porting it to grpc.aio is a matter of `async def`.
"""

from __future__ import annotations

from datetime import date

import grpc

from orderpay.v1 import recon_service_pb2 as pb
from orderpay.v1 import recon_service_pb2_grpc
from server.domain.errors import FieldViolation, InvalidArgumentError
from server.domain.pages import clamp_page_size
from server.rpc.call_context import current_caller
from server.rpc.mapping import timestamp
from server.service.recon_ports import DayReport, ReconException
from server.service.reconciliation import ReconciliationService

MAX_PAGE = 1000


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgumentError([FieldViolation("bill_date", "must be a date, YYYY-MM-DD")]) from None


def exception_to_pb(exception: ReconException) -> pb.ReconException:
    return pb.ReconException(
        exception_id=exception.id,
        bill_date=exception.bill_date.isoformat(),
        kind=pb.ReconExceptionKind.Value(f"RECON_EXCEPTION_KIND_{exception.kind.value}"),
        status=pb.ReconExceptionStatus.Value(f"RECON_EXCEPTION_STATUS_{exception.status.value}"),
        out_trade_no=exception.out_trade_no,
        out_refund_no=exception.out_refund_no,
        local_fen=exception.local_fen,
        remote_fen=exception.remote_fen,
        detail=exception.detail,
        resolution=exception.resolution,
        resolved_by=exception.resolved_by,
        created_at=timestamp(exception.created_at),
        updated_at=timestamp(exception.updated_at),
        account=exception.account,
    )


def report_to_pb(report: DayReport) -> pb.ReconReport:
    summary, totals = report.summary, report.summary.totals
    return pb.ReconReport(
        bill_date=report.bill_date.isoformat(),
        status=summary.status,
        bill_rows=summary.bill_rows,
        matched=summary.matched,
        repaired=report.repaired,
        deferred=summary.deferred,
        payments_fen=totals.payments_fen,
        refunds_fen=totals.refunds_fen,
        fees_fen=totals.fees_fen,
        fund_income_fen=totals.fund_income_fen,
        fund_expense_fen=totals.fund_expense_fen,
        clean=report.clean,
        exceptions=[exception_to_pb(e) for e in report.exceptions],
        trade_bill_sha1=summary.trade_sha1 or "",
        account=report.account or "",
    )


class ReconServicer(recon_service_pb2_grpc.ReconServiceServicer):
    def __init__(self, recon: ReconciliationService) -> None:
        self._recon = recon

    def GetReconReport(
        self, request: pb.GetReconReportRequest, context: grpc.ServicerContext
    ) -> pb.GetReconReportResponse:
        report = self._recon.report(_day(request.bill_date), request.account or None)
        return pb.GetReconReportResponse(report=report_to_pb(report))

    def ListReconExceptions(
        self, request: pb.ListReconExceptionsRequest, context: grpc.ServicerContext
    ) -> pb.ListReconExceptionsResponse:
        day = _day(request.bill_date) if request.bill_date else None
        limit = clamp_page_size(request.page_size, default=100, maximum=MAX_PAGE)
        found = self._recon.open_exceptions(day, limit=limit, account=request.account or None)
        return pb.ListReconExceptionsResponse(exceptions=[exception_to_pb(e) for e in found])

    def ResolveReconException(
        self, request: pb.ResolveReconExceptionRequest, context: grpc.ServicerContext
    ) -> pb.ResolveReconExceptionResponse:
        resolved = self._recon.resolve(request.exception_id, request.reason, current_caller())
        return pb.ResolveReconExceptionResponse(exception=exception_to_pb(resolved))
