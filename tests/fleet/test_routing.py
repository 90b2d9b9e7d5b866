"""Behind nginx, every call of a session reaches the worker that owns it; Start goes to any of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from parley.fleet.routing import session_metadata
from parley.sessions.names import owner_replica, replica_prefix
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import open_stream
from tests.fleet.support import Fleet, start_sessions
from tests.helpers import error_details

pytestmark = pytest.mark.asyncio(loop_scope="module")
PLAYED, INTERRUPTED = session_pb2.UTTERANCE_STATE_PLAYED, session_pb2.UTTERANCE_STATE_INTERRUPTED


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fleet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    fleet = Fleet(Path(tmp_path_factory.mktemp("fleet")))
    try:
        await fleet.start()
        yield fleet
    finally:
        await fleet.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stub(fleet: Fleet) -> AsyncIterator[pb_grpc.AgentSessionServiceStub]:
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        yield pb_grpc.AgentSessionServiceStub(channel)


async def test_starts_spread_over_the_workers_and_names_carry_the_owner(fleet: Fleet, stub) -> None:
    names = await start_sessions(stub, 3 * fleet.workers)
    assert {owner_replica(n) for n in names} == set(fleet.replica_ids)
    for name in names:
        await stub.Close(pb.CloseRequest(session=name), metadata=session_metadata(name))


async def test_every_call_of_a_session_reaches_its_owner(fleet: Fleet, stub) -> None:
    names = await start_sessions(stub, 2 * fleet.workers)
    for name in names:
        header = session_metadata(name)
        stream = await open_stream(stub, name, metadata=header)
        watch = stub.WatchEvents(pb.WatchEventsRequest(session=name), metadata=header)

        said = (await stub.Say(pb.SayRequest(session=name, text="hello from the proxy"), metadata=header)).utterance
        waited = await stub.WaitUtterance(pb.WaitUtteranceRequest(session=name, utterance_id=said.id), metadata=header)
        assert waited.utterance.state == PLAYED
        long = (await stub.Reply(pb.ReplyRequest(session=name, user_text="tell me a long story " * 10),
                                 metadata=header)).utterance
        await stream.wait_for(lambda s=stream, u=long: any(f.utterance_id == u.id for f in s.frames))
        cut = (await stub.Interrupt(pb.InterruptRequest(session=name), metadata=header)).interrupted
        assert [u.id for u in cut] == [long.id] and cut[0].state == INTERRUPTED
        await stub.PlayBackgroundAudio(pb.PlayBackgroundAudioRequest(session=name), metadata=header)
        await stub.StopBackgroundAudio(pb.StopBackgroundAudioRequest(session=name), metadata=header)
        got = (await stub.Get(pb.GetRequest(session=name), metadata=header)).session
        assert [u.id for u in got.utterances] == [said.id, long.id]

        closed = (await stub.Close(pb.CloseRequest(session=name, reason="done"), metadata=header)).session
        assert closed.close_reason == "done"
        watched = [r.event async for r in watch]
        assert watched[-1].session_closed.reason == "done"
        await stream.wait_for(lambda s=stream: s.of("session_closed"))
        assert stream.error is None and stream.frames


async def test_without_the_header_a_call_can_reach_a_worker_that_does_not_own_the_session(fleet: Fleet) -> None:
    """What a client that forgets the header sees: NOT_FOUND naming the owner (asked of a wrong worker directly)."""
    first, second = fleet.replica_ids[:2]
    async with grpc.aio.insecure_channel(fleet.worker_address(first)) as owner_channel, \
            grpc.aio.insecure_channel(fleet.worker_address(second)) as other_channel:
        name = (await start_sessions(pb_grpc.AgentSessionServiceStub(owner_channel), 1))[0]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pb_grpc.AgentSessionServiceStub(other_channel).Get(pb.GetRequest(session=name))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_details(err.value)[1] == "SESSION_NOT_FOUND"
        assert f"replica {first} owns it" in (err.value.details() or "")
        await pb_grpc.AgentSessionServiceStub(owner_channel).Close(pb.CloseRequest(session=name))


async def test_list_answers_for_one_worker_and_the_header_prefix_picks_which(fleet: Fleet, stub) -> None:
    names = await start_sessions(stub, 2 * fleet.workers)
    for replica in fleet.replica_ids:
        listed = (await stub.List(pb.ListRequest(), metadata=session_metadata(replica_prefix(replica)))).sessions
        mine = {n for n in names if owner_replica(n) == replica}
        assert mine and mine <= {s.name for s in listed}
        assert {owner_replica(s.name) for s in listed} == {replica}
    anywhere = (await stub.List(pb.ListRequest())).sessions
    assert len({owner_replica(s.name) for s in anywhere}) == 1  # one worker's sessions, not the fleet's


async def test_health_answers_through_the_proxy(fleet: Fleet) -> None:
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
