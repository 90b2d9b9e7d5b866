"""`parley web` against a real Parley server with authentication on: the bridge in-process (uvicorn on a
socket of its own), a WebSocket client standing in for the page, and a real headless chromium."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets

from parley.server import ParleyServer
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from parley.web.serve import uvicorn_config
from parley.web.settings import WebSettings

TOKEN = "web-bridge-token-0123456789"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def server_settings() -> ServerSettings:
    return ServerSettings(host="127.0.0.1", port=0, reap_interval=0.05, shutdown_grace=1.0, log_level="WARNING",
                          allow_stand_in_providers=True, auth_tokens=f"{TOKEN} web-tester")


@contextlib.asynccontextmanager
async def web_server(settings: WebSettings) -> AsyncIterator[str]:
    """The bridge app served by uvicorn in this event loop on a loopback socket it owns; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(dataclasses.replace(settings, port=port), log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not serving.done(), serving.exception()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        sock.close()


@pytest.fixture
async def web(server: ParleyServer) -> AsyncIterator[str]:
    async with web_server(WebSettings(address=f"127.0.0.1:{server.port}", token=TOKEN)) as url:
        yield url


class PageSocket:
    """A WebSocket client speaking the page's protocol: JSON frames kept in order, audio bytes counted."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.frames: list[dict[str, Any]] = []
        self.audio_bytes = 0
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self.socket:
                if isinstance(message, bytes):
                    self.audio_bytes += len(message)
                else:
                    self.frames.append(json.loads(message))
                self._changed.set()
        self._changed.set()

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.socket.send(json.dumps(message) if isinstance(message, dict) else message)

    async def next_frame(self, frame_type: str, timeout: float = 30.0, **match: Any) -> dict[str, Any]:
        """The first frame of `frame_type` (with the given fields) not yet returned by an earlier call."""
        async with asyncio.timeout(timeout):
            while True:
                for i, frame in enumerate(self.frames):
                    if frame["type"] == frame_type and all(frame.get(k) == v for k, v in match.items()):
                        del self.frames[i]
                        return frame
                if self._reader.done():
                    raise AssertionError(f"the socket closed with no {frame_type} frame {match}; close code "
                                         f"{self.socket.close_code} {self.socket.close_reason!r}")
                self._changed.clear()
                await self._changed.wait()

    async def closed(self, timeout: float = 10.0) -> int | None:
        async with asyncio.timeout(timeout):
            await self._reader
        return self.socket.close_code

    async def aclose(self) -> None:
        await self.socket.close()
        await self._reader


@contextlib.asynccontextmanager
async def page_socket(url: str, **kwargs: Any) -> AsyncIterator[PageSocket]:
    socket = await websockets.connect(url.replace("http://", "ws://") + "/ws", **kwargs)
    page = PageSocket(socket)
    try:
        yield page
    finally:
        await page.aclose()


async def wait_closed(stub: pb_grpc.AgentSessionServiceStub, name: str, timeout: float = 10.0) -> session_pb2.Session:
    """The session once it is CLOSED (polled)."""
    async with asyncio.timeout(timeout):
        while True:
            session = (await stub.Get(pb.GetRequest(session=name), metadata=AUTH)).session
            if session.status == session_pb2.SESSION_STATUS_CLOSED:
                return session
            await asyncio.sleep(0.05)
