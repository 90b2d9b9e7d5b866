"""Shared fixtures: a real Parley server on a free loopback port, its stubs, an OTLP receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from parley.server import ParleyServer
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from tests.telemetry.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real OTLP collector endpoint (trace and metrics services) on a loopback port."""
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
def server_settings() -> ServerSettings:
    """Override in a test module (or parametrize) to change the server's settings."""
    return ServerSettings(host="127.0.0.1", port=0, reap_interval=0.05, shutdown_grace=1.0, log_level="WARNING",
                          allow_stand_in_providers=True)


@pytest.fixture
async def server(server_settings: ServerSettings) -> AsyncIterator[ParleyServer]:
    srv = ParleyServer(server_settings.replace(port=0))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def channel(server: ParleyServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.AgentSessionServiceStub:
    return pb_grpc.AgentSessionServiceStub(channel)
