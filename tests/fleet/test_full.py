"""Behind the proxy, a worker whose stream slots are all taken gets no new sessions until one frees.

Two workers at `--max-streams 1`, behind nginx. A full worker closes its
Start-only port; nginx's connection is refused and it sends the Start to the
other worker, so every new session lands where its call can attach. With
every worker full, Start is UNAVAILABLE (retry later); a call that ends
frees its worker for the next Start.
"""

from __future__ import annotations

import grpc
import pytest

from parley.fleet.nginx import NO_REPLICA_MESSAGE
from parley.fleet.routing import session_metadata
from parley.sessions.names import owner_replica
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import StreamClient, open_stream
from tests.fleet.support import STAND_IN_START, start_sessions
from tests.helpers import eventually

PLAYED = session_pb2.UTTERANCE_STATE_PLAYED


async def start_until_placed(stub: pb_grpc.AgentSessionServiceStub, timeout: float = 15.0) -> str:
    """Start, retrying UNAVAILABLE as a client would while every worker is full.

    nginx skips a replica whose connection it saw refused for 5 s
    (`fail_timeout`), so a worker that opened again is tried after that.
    """
    async def start() -> str | None:
        try:
            return (await stub.Start(STAND_IN_START)).session.name
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return None
    return await eventually(start, timeout, "a worker to take the Start")


async def call(stub: pb_grpc.AgentSessionServiceStub, name: str) -> StreamClient:
    """Attach a caller to the session and hear the agent say something on it."""
    header = session_metadata(name)
    client = await open_stream(stub, name, metadata=header)
    said = (await stub.Say(pb.SayRequest(session=name, text="you are through"), metadata=header)).utterance
    waited = await stub.WaitUtterance(pb.WaitUtteranceRequest(session=name, utterance_id=said.id), metadata=header)
    assert waited.utterance.state == PLAYED and client.error is None
    return client


async def test_new_sessions_go_to_the_worker_with_a_free_stream_slot(make_fleet) -> None:
    fleet = await make_fleet(workers=2, flags=("--max-streams", "1"))
    async with fleet.channel() as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        first = (await start_sessions(stub, 1))[0]
        busy = owner_replica(first)
        (free,) = set(fleet.replica_ids) - {busy}
        first_call = await call(stub, first)
        await fleet.wait_until(lambda: fleet.log_events("every stream slot taken: new sessions go to other replicas"),
                               10, "the full worker to close its Start-only port")

        started = await start_sessions(stub, 6)
        assert {owner_replica(n) for n in started} == {free}  # none on the full worker
        second_call = await call(stub, started[0])  # ...where the call attaches

        with pytest.raises(grpc.aio.AioRpcError) as err:  # every worker full: no new session anywhere
            await stub.Start(STAND_IN_START)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert err.value.details() == NO_REPLICA_MESSAGE
        assert first_call.error is None and second_call.error is None  # the carried calls are untouched

        await stub.Close(pb.CloseRequest(session=first, reason="call over"), metadata=session_metadata(first))
        await fleet.wait_until(lambda: fleet.log_events("a stream slot free: taking new sessions again"),
                               10, "the worker to open its Start-only port again")
        reached = await start_until_placed(stub)
        assert owner_replica(reached) == busy
        third_call = await call(stub, reached)
        for client in (second_call, third_call):
            await client.aclose()
        await first_call.aclose()
