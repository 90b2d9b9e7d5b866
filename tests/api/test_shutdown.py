"""Stopping a real server: SIGTERM drains (live sessions finish), SIGINT and the drain timeout stop at once."""

from __future__ import annotations

import asyncio
import signal

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS
from tests.helpers import error_details, free_port, server_process

START = pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS))
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


async def refused_start(stub: pb_grpc.AgentSessionServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Start(START)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_details(err.value)[1] == "DRAINING"


async def drain_with_a_live_session(
        proc: asyncio.subprocess.Process, channel: grpc.aio.Channel,
) -> tuple[pb_grpc.AgentSessionServiceStub, str, grpc.aio.UnaryStreamCall]:
    """Start a session and watch its events, SIGTERM the server, see health turn NOT_SERVING."""
    stub = pb_grpc.AgentSessionServiceStub(channel)
    session = (await stub.Start(START)).session.name
    events = stub.WatchEvents(pb.WatchEventsRequest(session=session))
    health_updates = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
    assert (await health_updates.read()).status == SERVING
    proc.send_signal(signal.SIGTERM)
    assert (await health_updates.read()).status == NOT_SERVING
    return stub, session, events


async def test_sigterm_lets_the_live_session_finish_then_exits_zero() -> None:
    async with server_process("--allow-stand-in-providers") as (proc, channel):
        stub, session, events = await drain_with_a_live_session(proc, channel)
        await refused_start(stub)
        # the live session is served as before: it speaks, and answers every call
        said = (await stub.Say(pb.SayRequest(session=session, text="still here"))).utterance
        waited = await stub.WaitUtterance(pb.WaitUtteranceRequest(session=session, utterance_id=said.id))
        assert waited.utterance.state == session_pb2.UTTERANCE_STATE_PLAYED
        assert proc.returncode is None
        await stub.Close(pb.CloseRequest(session=session, reason="call over"))
        received = [r.event async for r in events]
        assert received[-1].session_closed.reason == "call over"
        assert await events.code() == grpc.StatusCode.OK
        # its last session gone, the server stops by itself
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        log = (await proc.stderr.read()).decode()
        assert all(f'"event": "{e}"' in log for e in ("draining", "drained", "stopped")), log


async def test_sigint_during_a_drain_closes_the_sessions_at_once() -> None:
    async with server_process("--allow-stand-in-providers", "--drain-timeout", "600") as (proc, channel):
        _, _, events = await drain_with_a_live_session(proc, channel)

        proc.send_signal(signal.SIGINT)

        received = [r.event async for r in events]  # the in-flight stream completes...
        assert received[-1].session_closed.reason == "server shutting down"
        assert await events.code() == grpc.StatusCode.OK  # ...with OK, not a cut connection
        assert await asyncio.wait_for(proc.wait(), 10) == 0


@pytest.fixture
def start_port() -> int:
    return free_port()


@pytest.fixture
def server_settings(server_settings: ServerSettings, start_port: int, request: pytest.FixtureRequest) -> ServerSettings:
    """In-process servers here also listen on a Start-only port; a test's parameters change more settings."""
    return server_settings.replace(start_port=start_port, **getattr(request, "param", {}))


@pytest.mark.parametrize("server_settings", [{"drain_timeout": 0.3}], indirect=True)
async def test_the_drain_timeout_closes_what_is_left(server, stub) -> None:
    session = (await stub.Start(START)).session.name
    events = stub.WatchEvents(pb.WatchEventsRequest(session=session))
    await server.drain()
    received = [r.event async for r in events]
    assert received[-1].session_closed.reason == "server shutting down"


async def test_the_start_listener_closes_when_draining_and_the_session_port_stays(server, stub, start_port) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{start_port}") as start_channel:
        start_stub = pb_grpc.AgentSessionServiceStub(start_channel)
        session = (await start_stub.Start(START)).session.name  # what a proxy does with Start
        await server.begin_drain()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await start_stub.Start(START, timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # not even connected: a proxy tries another replica
    async with grpc.aio.insecure_channel(f"127.0.0.1:{start_port}") as fresh:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.AgentSessionServiceStub(fresh).Start(START, timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (await stub.Get(pb.GetRequest(session=session))).session.status == session_pb2.SESSION_STATUS_ACTIVE


async def test_begin_drain_refuses_start_only(server, channel, stub) -> None:
    session = (await stub.Start(START)).session.name
    await server.begin_drain()
    health = health_pb2_grpc.HealthStub(channel)
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == NOT_SERVING
    await refused_start(stub)
    assert (await stub.Get(pb.GetRequest(session=session))).session.status == session_pb2.SESSION_STATUS_ACTIVE
    assert (await stub.Say(pb.SayRequest(session=session, text="hello"))).utterance.id
