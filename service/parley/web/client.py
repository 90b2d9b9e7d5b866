"""The bridge's side of gRPC: one channel to the Parley server, shared by every tab."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.web.settings import WebSettings


class ParleyClient:
    """A channel, the session stub and the call metadata (the bearer token)."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.channel = grpc.aio.insecure_channel(settings.address)
        self.stub = pb_grpc.AgentSessionServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {settings.token}"),) if settings.token else ())

    async def health(self) -> tuple[str, str]:
        """("SERVING" | "NOT_SERVING" | "UNREACHABLE", detail)."""
        try:
            reply = await self._health.Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.aio.AioRpcError as exc:
            return "UNREACHABLE", f"{exc.code().name}: {exc.details()}"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status), ""

    async def close(self) -> None:
        await self.channel.close()


def error_frame(exc: grpc.aio.AioRpcError, request: str) -> dict[str, str]:
    """A failed call as the page sees it: the code, the message, and the rich status' field and reason."""
    frame = {"type": "error", "request": request, "code": exc.code().name, "message": exc.details() or "",
             "field": "", "reason": ""}
    raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    if isinstance(raw, bytes):
        for detail in status_pb2.Status.FromString(raw).details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                if bad.field_violations:
                    frame["field"] = bad.field_violations[0].field
                    frame["message"] = f"{bad.field_violations[0].field}: {bad.field_violations[0].description}"
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                frame["reason"] = info.reason
    return frame
