"""AgentSessionService: converts requests, delegates to the engine, converts back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from parley.api import converters as conv
from parley.api.status import maps_errors
from parley.sessions.registry import SessionRegistry
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc


def owner_of(context: grpc.aio.ServicerContext) -> str:
    """The principal that makes the call ("" when authentication is off)."""
    return ""


class AgentSessionServicer(pb_grpc.AgentSessionServiceServicer):
    def __init__(self, registry: SessionRegistry) -> None:
        self.registry = registry

    def _session_proto(self, session, *, full: bool = True):  # type: ignore[no-untyped-def]
        return conv.session_to_proto(session.snapshot(full=full), session.idle_ttl_seconds)

    @maps_errors
    async def Start(self, request: pb.StartRequest, context: grpc.aio.ServicerContext) -> pb.StartResponse:
        config = conv.config_from_proto(request.config)
        session = await self.registry.start(config, owner=owner_of(context), request_id=request.request_id)
        return pb.StartResponse(session=self._session_proto(session))

    @maps_errors
    async def Get(self, request: pb.GetRequest, context: grpc.aio.ServicerContext) -> pb.GetResponse:
        session = self.registry.get(request.session, owner=owner_of(context))
        return pb.GetResponse(session=self._session_proto(session))

    @maps_errors
    async def List(self, request: pb.ListRequest, context: grpc.aio.ServicerContext) -> pb.ListResponse:
        page = self.registry.list(owner=owner_of(context), page_size=request.page_size, page_token=request.page_token)
        return pb.ListResponse(
            sessions=[self._session_proto(s, full=False) for s in page.sessions], next_page_token=page.next_page_token
        )

    @maps_errors
    async def Close(self, request: pb.CloseRequest, context: grpc.aio.ServicerContext) -> pb.CloseResponse:
        session = await self.registry.close(request.session, owner=owner_of(context), reason=request.reason)
        return pb.CloseResponse(session=self._session_proto(session))

    @maps_errors
    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        session = self.registry.get_active(request.session, owner=owner_of(context))
        async for event in session.bus.subscribe():
            yield pb.WatchEventsResponse(event=conv.event_to_proto(event))
