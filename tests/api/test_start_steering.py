"""A full server closes its Start-only listener, so a proxy sends new calls where a stream can attach.

The listener (start_port) is what a proxy sends Start to; a refused
connection makes it try the next replica. Here, on a real server with
max_streams 2: it closes when the last stream slot is taken and opens again
when one frees, while the calls already carried play on and the session
port keeps answering. Then as an invariant over random starts, attaches and
closes: the listener is open exactly while a slot is free. And when
another program holds the port as a slot frees, the server tries again
until it has its listener back.
"""

from __future__ import annotations

import asyncio
import random
import socket

import grpc
import pytest

from parley.server import ParleyServer
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, StreamClient, open_stream
from tests.helpers import eventually, free_port
from tests.reliability.support import contiguous

START = pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS))
LIMIT = 2


@pytest.fixture
def start_port() -> int:
    return free_port()


@pytest.fixture
def server_settings(server_settings: ServerSettings, start_port: int) -> ServerSettings:
    return server_settings.replace(start_port=start_port, max_streams=LIMIT)


async def listening(port: int) -> bool:
    """Whether a connection to the port on loopback is accepted (what a proxy's connect learns)."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def wait_listening(port: int, wanted: bool) -> None:
    async def as_wanted() -> bool:
        return await listening(port) == wanted
    await eventually(as_wanted, 5.0, f"the Start-only listener {'open' if wanted else 'closed'}")


async def start_through(port: int) -> str:
    """Start a session on the Start-only port, as a proxy would: on a connection of its own.

    (gRPC's channels share their connections' back-off by address; a local
    pool makes this attempt connect now, as the proxy does.)
    """
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                         options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        return (await pb_grpc.AgentSessionServiceStub(channel).Start(START, timeout=5)).session.name


async def test_the_listener_closes_at_the_last_slot_and_opens_when_one_frees(server, stub, start_port) -> None:
    names = [await start_through(start_port) for _ in range(3)]
    calls = [await open_stream(stub, name) for name in names[:LIMIT]]
    await wait_listening(start_port, False)
    with pytest.raises(grpc.aio.AioRpcError) as err:  # refused at connect: a proxy tries the next replica
        await start_through(start_port)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE

    said = (await stub.Say(pb.SayRequest(session=names[0], text="the call goes on"))).utterance
    waited = await stub.WaitUtterance(pb.WaitUtteranceRequest(session=names[0], utterance_id=said.id))
    assert waited.utterance.state == session_pb2.UTTERANCE_STATE_PLAYED  # the carried calls play on
    assert all(contiguous(c) and c.error is None for c in calls)
    assert (await stub.Start(START)).session.name  # the session port still starts sessions (a direct client)

    await stub.Close(pb.CloseRequest(session=names[0], reason="call over"))
    await wait_listening(start_port, True)
    assert await start_through(start_port)
    late = await open_stream(stub, names[2])  # the freed slot carries the waiting session's call
    said = (await stub.Say(pb.SayRequest(session=names[2], text="now it is my turn"))).utterance
    waited = await stub.WaitUtterance(pb.WaitUtteranceRequest(session=names[2], utterance_id=said.id))
    assert waited.utterance.state == session_pb2.UTTERANCE_STATE_PLAYED
    assert late.error is None and any(f.utterance_id == said.id for f in late.frames)
    await wait_listening(start_port, False)  # full again
    for call in [*calls, late]:
        await call.aclose()


async def test_the_listener_is_open_exactly_while_a_slot_is_free(server: ParleyServer, stub, start_port) -> None:
    rng = random.Random(14)
    idle: list[str] = []  # sessions without a stream
    carried: dict[str, StreamClient] = {}
    closings = refusals = 0
    for _ in range(60):
        action = rng.choice(("start", "start", "attach", "attach", "close"))
        if action == "start":
            idle.append(await start_through(start_port) if len(carried) < LIMIT else
                        (await stub.Start(START)).session.name)
        elif action == "attach" and idle:
            name = idle.pop(rng.randrange(len(idle)))
            call = await open_stream(stub, name, attached=False)
            await call.wait_for(lambda c=call: c.frames or c.error is not None)
            if len(carried) < LIMIT:
                assert call.error is None, call.error
                carried[name] = call
            else:
                assert call.error is not None and call.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                refusals += 1
                idle.append(name)
        elif action == "close" and carried:
            name = rng.choice(sorted(carried))
            await stub.Close(pb.CloseRequest(session=name, reason="call over"))
            ended = carried.pop(name)
            await ended.wait_for(lambda c=ended: c.of("session_closed"))
        assert server.registry.stream_slots.in_use == len(carried)
        await wait_listening(start_port, len(carried) < LIMIT)
        closings += len(carried) == LIMIT
    assert refusals > 3 and closings > 5  # the walk went past the limit, and back, many times
    for call in carried.values():
        await call.aclose()


async def test_a_port_taken_meanwhile_is_tried_again_until_the_listener_opens(
        server, stub, start_port, caplog: pytest.LogCaptureFixture) -> None:
    names = [(await stub.Start(START)).session.name for _ in range(LIMIT)]
    calls = [await open_stream(stub, name) for name in names]
    await wait_listening(start_port, False)
    squatter = socket.create_server(("127.0.0.1", start_port))  # another program takes the port meanwhile
    try:
        await stub.Close(pb.CloseRequest(session=names[0], reason="call over"))
        await eventually(lambda: any(r.message == "cannot reopen the Start-only listener" for r in caplog.records),
                         5.0, "the server trying to open its Start-only listener")
    finally:
        squatter.close()
    await wait_listening(start_port, True)  # tried again: the listener opens once the port is free
    assert await start_through(start_port)
    for call in calls:
        await call.aclose()
