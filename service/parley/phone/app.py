"""The phone bridge as Starlette routes, and as a whole app for `parley phone`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from parley.phone.bridge import PhoneCall, PhoneSettings
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.web.app import create_app
from parley.web.settings import WebSettings

DEFAULT_PATH = "/phone"


class PhoneBridge:
    """Serves phone media streams: one gRPC channel to Parley, shared by every call."""

    def __init__(self, settings: PhoneSettings) -> None:
        self.settings = settings
        self.calls: set[PhoneCall] = set()
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.AgentSessionServiceStub | None = None

    def stub(self) -> pb_grpc.AgentSessionServiceStub:
        """The stub, on a channel opened on first use (inside the serving event loop)."""
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self.settings.address)
            self._stub = pb_grpc.AgentSessionServiceStub(self._channel)
        return self._stub

    async def handle(self, websocket: WebSocket) -> None:
        call = PhoneCall(websocket, self.stub(), self.settings)
        self.calls.add(call)
        try:
            await call.run()
        finally:
            self.calls.discard(call)

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None


def phone_routes(bridge: PhoneBridge, path: str = DEFAULT_PATH) -> list[BaseRoute]:
    """The media-stream WebSocket route, to mount on any Starlette app (close `bridge` on shutdown)."""
    return [WebSocketRoute(path, bridge.handle)]


async def _healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def phone_app(settings: PhoneSettings, path: str = DEFAULT_PATH, page: WebSettings | None = None) -> Starlette:
    """The bridge and GET /healthz, as `parley phone` runs it; with `page`, on `parley web`'s app (one port)."""
    bridge = PhoneBridge(settings)
    routes = [*phone_routes(bridge, path), Route("/healthz", _healthz)]
    if page is not None:
        app = create_app(page, routes, on_close=[bridge.aclose])
        app.state.bridge = bridge
        return app

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await bridge.aclose()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.bridge = bridge
    return app
