"""A real MCP server (the SDK's, streamable HTTP under uvicorn) on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from mcp.server import MCPServer

from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS
from tests.providers.openai_stand_in import StandInOpenAIServer

WEATHER = {"Paris": "sunny, 21 degrees", "Oslo": "snowing, -4 degrees"}


@dataclass
class WeatherServer:
    """The MCP server under test: `get_weather` answers from WEATHER, `wait` sleeps."""

    url: str
    calls: list[tuple[str, dict]] = field(default_factory=list)


def weather_app(record: WeatherServer) -> MCPServer:
    app = MCPServer("weather")

    @app.tool()
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        record.calls.append(("get_weather", {"city": city}))
        return f"The weather in {city}: {WEATHER.get(city, 'unknown')}"

    @app.tool()
    async def wait(seconds: float) -> str:
        """Wait, then say so."""
        record.calls.append(("wait", {"seconds": seconds}))
        await asyncio.sleep(seconds)
        return f"waited {seconds} s"

    return app


TOKEN = "Bearer s3cret"


def require_token(app: Any) -> Any:
    """ASGI wrapper: 401 unless the request carries `authorization: TOKEN`."""

    async def guarded(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != TOKEN.encode():
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await app(scope, receive, send)

    return guarded


@asynccontextmanager
async def serving(record: WeatherServer, *, guarded: bool = False) -> AsyncIterator[WeatherServer]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    record.url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    app = weather_app(record).streamable_http_app()
    server = uvicorn.Server(uvicorn.Config(require_token(app) if guarded else app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the MCP server did not start"
        await asyncio.sleep(0.01)
    try:
        yield record
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def weather_server() -> AsyncIterator[WeatherServer]:
    async with serving(WeatherServer("")) as record:
        yield record


@pytest.fixture
async def guarded_weather_server() -> AsyncIterator[WeatherServer]:
    """The same server behind a bearer token (TOKEN)."""
    async with serving(WeatherServer(""), guarded=True) as record:
        yield record


@pytest.fixture
def down_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
async def llm_endpoint() -> AsyncIterator[StandInOpenAIServer]:
    """A loopback stand-in for a remote OpenAI-compatible endpoint, scripted per test."""
    server = StandInOpenAIServer()
    await server.start()
    yield server
    await server.stop()


def providers_with(llm: StandInOpenAIServer | None = None) -> session_pb2.ProvidersConfig:
    """Stand-in speech providers; the OpenAI-compatible LLM against the stand-in endpoint if given."""
    providers = session_pb2.ProvidersConfig()
    providers.CopyFrom(STAND_IN_PROVIDERS)
    if llm is not None:
        providers.llm.name = "openai"
        providers.llm.options.update({"base_url": llm.base_url, "model": "stand-in", "max_retries": 0})
    return providers


def mcp_tasks() -> list[asyncio.Task]:
    """Connection tasks of MCP servers still alive in this process."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("mcp:") and not t.done()]
