"""SIGTERM on a real server process: health flips, streams end cleanly, exit 0."""

from __future__ import annotations

import asyncio
import signal

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from tests.helpers import error_details, server_process


async def test_sigterm_drains_and_exits_zero() -> None:
    async with server_process() as (proc, channel):
        stub = pb_grpc.AgentSessionServiceStub(channel)
        session = (await stub.Start(pb.StartRequest())).session
        events = stub.WatchEvents(pb.WatchEventsRequest(session=session.name))
        health_updates = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await health_updates.read()).status == health_pb2.HealthCheckResponse.SERVING
        await asyncio.sleep(0.1)

        proc.send_signal(signal.SIGTERM)

        assert (await health_updates.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        received = [r.event async for r in events]  # the in-flight stream completes...
        assert received[-1].WhichOneof("event") == "session_closed"
        assert received[-1].session_closed.reason == "server shutting down"
        assert await events.code() == grpc.StatusCode.OK  # ...with OK, not a cut connection
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        log = (await proc.stderr.read()).decode()
        assert '"event": "draining"' in log and '"event": "stopped"' in log


async def test_new_calls_while_draining_are_unavailable(server, channel, stub) -> None:
    session = (await stub.Start(pb.StartRequest())).session
    await server.begin_drain()
    health = health_pb2_grpc.HealthStub(channel)
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.NOT_SERVING
    for call in (stub.Start(pb.StartRequest()), stub.Get(pb.GetRequest(session=session.name))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_details(err.value)[1] == "DRAINING"
