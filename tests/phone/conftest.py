"""The phone bridge served by uvicorn on a loopback port, talking to a real Parley server."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import uvicorn

from parley.phone.app import PhoneBridge, phone_app
from parley.phone.bridge import PhoneSettings
from parley.server import ParleyServer
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS
from tests.helpers import free_port
from tests.phone.provider import Provider


@dataclass
class PhoneEndpoint:
    url: str
    bridge: PhoneBridge

    def provider(self, **fields) -> Provider:  # type: ignore[no-untyped-def]
        return Provider(self.url, **fields)


@pytest.fixture
def phone_settings(server: ParleyServer) -> PhoneSettings:
    """Stand-in providers isolate the bridge; a test that wants real speech replaces the config."""
    return PhoneSettings(address=f"127.0.0.1:{server.port}", lead_ms=0,
                         session_config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS, auto_reply=False))


@pytest.fixture
async def serve_phone() -> AsyncIterator[Callable[[PhoneSettings], Awaitable[PhoneEndpoint]]]:
    servers: list[tuple[uvicorn.Server, asyncio.Task]] = []

    async def serve(settings: PhoneSettings) -> PhoneEndpoint:
        app = phone_app(settings)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets-sansio", log_config=None,
                                               lifespan="on"))
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        deadline = time.monotonic() + 10
        while not server.started:
            assert not task.done() and time.monotonic() < deadline, "the phone bridge did not start"
            await asyncio.sleep(0.01)
        return PhoneEndpoint(f"ws://127.0.0.1:{port}/phone", app.state.bridge)

    yield serve
    for server, task in servers:
        server.should_exit = True
        await task


@pytest.fixture
async def phone(serve_phone, phone_settings: PhoneSettings) -> PhoneEndpoint:  # type: ignore[no-untyped-def]
    return await serve_phone(phone_settings)


def with_settings(settings: PhoneSettings, **changes) -> PhoneSettings:  # type: ignore[no-untyped-def]
    return dataclasses.replace(settings, **changes)
