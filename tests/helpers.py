"""Small helpers for reading rich gRPC errors in tests."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2


def error_details(exc: grpc.aio.AioRpcError) -> tuple[list[tuple[str, str]], str]:
    """(BadRequest field violations as (field, description), ErrorInfo reason) of a failed call."""
    raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw is not None, f"no rich status on {exc.code()}: {exc.details()}"
    status = status_pb2.Status.FromString(raw)
    assert status.code == exc.code().value[0]
    violations: list[tuple[str, str]] = []
    reason = ""
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return violations, reason
