"""SIGTERM behind the proxy: new sessions go elsewhere at once, live calls finish, then the process goes."""

from __future__ import annotations

import asyncio
import os
import signal

import grpc
import pytest

from parley.fleet.nginx import NO_REPLICA_MESSAGE
from parley.fleet.routing import session_metadata
from parley.sessions.names import owner_replica
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import open_stream
from tests.fleet.support import STAND_IN_START, serving, start_sessions

PLAYED = session_pb2.UTTERANCE_STATE_PLAYED


async def say_and_wait(stub: pb_grpc.AgentSessionServiceStub, name: str, text: str) -> int:
    header = session_metadata(name)
    said = (await stub.Say(pb.SayRequest(session=name, text=text), metadata=header)).utterance
    return (await stub.WaitUtterance(pb.WaitUtteranceRequest(session=name, utterance_id=said.id),
                                     metadata=header)).utterance.state


async def test_a_draining_worker_gets_no_new_sessions_and_finishes_its_live_call(make_fleet) -> None:
    fleet = await make_fleet()
    draining = fleet.replica_ids[0]
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        names = await start_sessions(stub, 2 * fleet.workers)
        mine = [n for n in names if owner_replica(n) == draining]
        assert mine
        call = await open_stream(stub, mine[0], metadata=session_metadata(mine[0]))
        caller = asyncio.create_task(call.send_silence(60))

        os.kill(fleet.worker_pid(draining), signal.SIGTERM)
        address = fleet.worker_address(draining)
        await fleet.wait_until(lambda: fleet.log_events("draining"), 10, "the worker to start draining")
        assert not await serving(address)  # health NOT_SERVING

        fresh = await start_sessions(stub, 3 * fleet.workers)  # every Start succeeds, none on the draining worker
        assert draining not in {owner_replica(n) for n in fresh}
        assert await say_and_wait(stub, mine[0], "the call goes on") == PLAYED  # the live call is served as before
        frames_before = len(call.frames)
        await call.wait_for(lambda: len(call.frames) > frames_before + 25)
        assert call.error is None

        for name in mine:  # the last of its sessions ends: the worker stops, and is started afresh
            await stub.Close(pb.CloseRequest(session=name, reason="call over"), metadata=session_metadata(name))
        await call.wait_for(lambda: call.of("session_closed"))
        assert call.error is None
        await fleet.wait_until(lambda: [r for r in fleet.log_events("worker exited; restarting")
                                        if r["replica"] == draining], 30, "the drained worker to exit")
        exited = [r for r in fleet.log_events("worker exited; restarting") if r["replica"] == draining][0]
        assert (exited["exit"], exited["level"]) == ("code 0", "INFO")
        assert [r for r in fleet.log_events("drained") if r.get("replica") == draining]
        await fleet.wait_serving(draining)
        caller.cancel()
        await asyncio.gather(caller, return_exceptions=True)


async def test_sigterm_to_the_supervisor_drains_every_worker_then_exits_zero(make_fleet) -> None:
    fleet = await make_fleet()
    assert fleet.supervisor is not None
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        names = await start_sessions(stub, fleet.workers)
        assert {owner_replica(n) for n in names} == set(fleet.replica_ids)

        fleet.supervisor.send_signal(signal.SIGTERM)
        await fleet.wait_until(lambda: len(fleet.log_events("draining")) == fleet.workers, 10, "every worker to drain")

        with pytest.raises(grpc.aio.AioRpcError) as err:  # no worker takes new sessions
            await stub.Start(STAND_IN_START)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert err.value.details() == NO_REPLICA_MESSAGE  # said by the proxy, as a gRPC status
        for name in names:  # every live session is served to its end
            assert await say_and_wait(stub, name, "still here") == PLAYED
            await stub.Close(pb.CloseRequest(session=name), metadata=session_metadata(name))
        assert await asyncio.wait_for(fleet.supervisor.wait(), 30) == 0
        assert fleet.log_events("workers stopped") and not fleet.log_events("worker exited; restarting")
