"""ReconService over real gRPC: admin only, a day's report, open exceptions, resolving with a reason."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from orderpay.v1 import recon_service_pb2 as pb
from orderpay.v1 import recon_service_pb2_grpc
from tests.support.recon_world import World
from tests.support.rich_status import failure_of
from tests.support.serving import ServingThread

BFF = (("authorization", "Bearer test-bff-token"),)
ADMIN = (("authorization", "Bearer test-admin-token"),)


def test_recon_service(make_world: Callable[..., World]) -> None:
    world = make_world()
    omitted, silent = world.paid(), world.prepaid()
    world.pay_at_wechat(silent)
    world.control("POST", f"orders/{omitted.out_trade_no}/faults", {"bill_omit": True})
    world.open_bills(world.day)
    world.recon.run_day(world.day)
    server = ServingThread(world.app)  # gRPC only; ReconService over the world's reconciliation
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = recon_service_pb2_grpc.ReconServiceStub(channel)
            day = world.day.isoformat()
            with pytest.raises(grpc.RpcError) as denied:
                stub.GetReconReport(pb.GetReconReportRequest(bill_date=day), metadata=BFF)
            assert failure_of(denied.value).code is grpc.StatusCode.PERMISSION_DENIED

            report = stub.GetReconReport(pb.GetReconReportRequest(bill_date=day), metadata=ADMIN).report
            assert (report.status, report.bill_rows, report.matched, report.repaired, report.clean) == (
                "DONE", 1, 1, 1, False,
            )  # fmt: skip
            assert report.HasField("fund_income_fen")
            assert sorted(pb.ReconExceptionKind.Name(e.kind) for e in report.exceptions) == [
                "RECON_EXCEPTION_KIND_MISSING_LOCAL",
                "RECON_EXCEPTION_KIND_MISSING_REMOTE",
            ]

            (open_one,) = stub.ListReconExceptions(
                pb.ListReconExceptionsRequest(bill_date=day), metadata=ADMIN
            ).exceptions
            assert (open_one.out_trade_no, open_one.local_fen) == (omitted.out_trade_no, omitted.paid_fee)
            every_day = stub.ListReconExceptions(pb.ListReconExceptionsRequest(), metadata=ADMIN).exceptions
            assert open_one.exception_id in {e.exception_id for e in every_day}

            resolved = stub.ResolveReconException(
                pb.ResolveReconExceptionRequest(exception_id=open_one.exception_id, reason="ticket 7"),
                metadata=ADMIN,
            ).exception
            assert resolved.status == pb.RECON_EXCEPTION_STATUS_RESOLVED
            assert (resolved.resolution, resolved.resolved_by) == ("ticket 7", "admin")
            again = stub.GetReconReport(pb.GetReconReportRequest(bill_date=day), metadata=ADMIN).report
            assert again.clean

            with pytest.raises(grpc.RpcError) as twice:
                stub.ResolveReconException(
                    pb.ResolveReconExceptionRequest(exception_id=open_one.exception_id, reason="again"),
                    metadata=ADMIN,
                )
            assert failure_of(twice.value).reason == "INVALID_STATE_TRANSITION"
            with pytest.raises(grpc.RpcError) as missing:
                stub.ResolveReconException(
                    pb.ResolveReconExceptionRequest(exception_id=10**12, reason="x"), metadata=ADMIN
                )
            assert failure_of(missing.value).code is grpc.StatusCode.NOT_FOUND
            assert failure_of(missing.value).reason == "RECON_EXCEPTION_NOT_FOUND"
            with pytest.raises(grpc.RpcError) as bad:
                stub.GetReconReport(pb.GetReconReportRequest(bill_date="yesterday"), metadata=ADMIN)
            assert failure_of(bad.value).code is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        server.stop(1)
