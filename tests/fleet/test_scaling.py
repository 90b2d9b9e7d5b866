"""Adding a replica to the proxy moves no live session: names carry their owner, the proxy reloads in place."""

from __future__ import annotations

import asyncio
import time

import grpc

from parley.fleet.routing import session_metadata
from parley.sessions.names import owner_replica
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from tests.engine.conftest import open_stream
from tests.fleet.support import start_sessions
from tests.reliability.support import contiguous


async def test_adding_a_replica_moves_no_live_session(make_fleet) -> None:
    fleet = await make_fleet(proxied=2)  # three workers run; the proxy knows two
    newcomer = fleet.replica_ids[2]
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        names = await start_sessions(stub, 4)
        assert {owner_replica(n) for n in names} == set(fleet.replica_ids[:2])
        streams = [await open_stream(stub, n, metadata=session_metadata(n)) for n in names]
        callers = [asyncio.create_task(s.send_silence(60)) for s in streams]

        reloaded_at = time.monotonic()
        await fleet.reload_proxy(3)

        # new Starts reach the newcomer; the live calls never noticed
        async with grpc.aio.insecure_channel(fleet.address) as fresh_channel:  # a new connection: the new config
            fresh = pb_grpc.AgentSessionServiceStub(fresh_channel)
            started = await start_sessions(fresh, 6)
            assert newcomer in {owner_replica(n) for n in started}
            for name in names:  # every old session is still reached by its name, on old and new connections
                for s in (stub, fresh):
                    got = (await s.Get(pb.GetRequest(session=name), metadata=session_metadata(name))).session
                    assert got.name == name
        for stream in streams:
            await stream.wait_for(lambda stream=stream: stream.frames[-1].received > reloaded_at + 1.0)
            assert stream.error is None and contiguous(stream)
        for task in callers:
            task.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        for stream in streams:
            await stream.aclose()
