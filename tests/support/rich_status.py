"""Decode the rich status a server sent: code, ErrorInfo and BadRequest field violations."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class Failure:
    code: grpc.StatusCode
    reason: str
    domain: str
    metadata: dict[str, str]
    fields: set[str]
    message: str


def failure_of(error: grpc.RpcError) -> Failure:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status in {error!r}"
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    reason, domain, metadata, fields = "", "", {}, set()
    for detail in status.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
            fields = {v.field for v in bad.field_violations}
    return Failure(error.code(), reason, domain, metadata, fields, status.message)  # type: ignore[attr-defined]
