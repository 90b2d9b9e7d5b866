"""max_streams: past it a new call is refused, and the calls already admitted play on untouched.

Over gRPC on a real server (stand-in providers), then as an invariant over
many random attach / detach / take-over / close steps on an in-process
registry: the slots in use always equal the sessions that hold one, and an
attach is refused exactly when the model says it must be.
"""

from __future__ import annotations

import asyncio
import random

import grpc
import numpy as np
import pytest

from parley.errors import Aborted, ResourceExhausted
from parley.providers.workers import Workers
from parley.sessions.config import SessionConfig
from parley.sessions.limits import RegistryLimits
from parley.sessions.registry import SessionRegistry
from parley.sessions.session import Session
from parley.sessions.stream import AttachedStream, StreamSpec
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from tests.engine.conftest import STAND_IN_CHOICES, StreamClient, open_stream
from tests.engine.test_speech import wait_done
from tests.reliability.support import contiguous, outcome_from

LONG_SPEECH = "la " * 300  # about a minute of the tone voice


@pytest.fixture
def server_settings(server_settings: ServerSettings) -> ServerSettings:
    return server_settings.replace(max_streams=2)


async def refused(client: StreamClient) -> str:
    """The limit named by a StreamAudio call that was refused as RESOURCE_EXHAUSTED."""
    await client.wait_for(lambda: client.error is not None)
    error = client.error
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    return outcome_from(error.code(), error.details() or "", error.trailing_metadata()).limit


async def test_a_stream_past_the_limit_is_refused_and_the_admitted_calls_play_on(stub, start_session) -> None:
    first, second, third = [(await start_session()).name for _ in range(3)]
    calls = {name: await open_stream(stub, name) for name in (first, second)}
    for name in calls:
        await stub.Say(pb.SayRequest(session=name, text=LONG_SPEECH))
    caller_audio = np.zeros(16000 * 2, np.int16)  # both admitted callers keep sending while the third knocks
    senders = [asyncio.create_task(c.send(caller_audio)) for c in calls.values()]

    late = await open_stream(stub, third, attached=False)
    assert await refused(late) == "max_streams"
    heard_before = {name: len(c.frames) for name, c in calls.items()}
    for name, client in calls.items():
        await client.wait_for(lambda c=client, n=name: len(c.frames) > heard_before[n] + 25)
        assert contiguous(client) and any(f.utterance_id for f in client.frames[-25:])  # still speaking
    await asyncio.gather(*senders)

    # Taking over an admitted call's stream needs no second slot.
    replacement = await open_stream(stub, first, take_over=True)
    await replacement.wait_for(lambda: len(replacement.frames) > 5)

    # Once a call ends, its slot serves the session that was refused: that session was not harmed.
    await stub.Close(pb.CloseRequest(session=second))
    retry = await open_stream(stub, third)
    said = (await stub.Say(pb.SayRequest(session=third, text="now there is room"))).utterance
    await wait_done(stub, third, said.id)
    await retry.wait_for(lambda: any(f.utterance_id == said.id for f in retry.frames))
    for client in (*calls.values(), replacement, late, retry):
        await client.aclose()


async def test_a_call_in_its_reattach_window_keeps_its_slot(stub, start_session) -> None:
    dropping = (await start_session(reattach_window_seconds=60)).name
    others = [(await start_session()).name for _ in range(2)]
    admitted = await open_stream(stub, others[0])
    call = await open_stream(stub, dropping)
    await call.aclose()  # the caller's connection drops; the session waits for it to come back

    newcomer = await open_stream(stub, others[1], attached=False)
    assert await refused(newcomer) == "max_streams"
    back = await open_stream(stub, dropping)  # the dropped call comes back ahead of the newcomer
    await back.wait_for(lambda: len(back.frames) > 5)

    await stub.Close(pb.CloseRequest(session=dropping))  # once it ends for good, the newcomer gets in
    await open_stream(stub, others[1])
    await admitted.aclose()


SPEC = StreamSpec(16000, 1, SessionConfig().output_format)


async def test_slots_in_use_match_the_sessions_holding_one_over_random_steps() -> None:
    limit, steps = 3, 600
    workers = Workers(2)
    registry = SessionRegistry(RegistryLimits(allow_stand_in_providers=True, max_streams=limit), workers=workers)
    rng = random.Random(7)
    sessions: list[Session] = []
    attached: dict[Session, AttachedStream] = {}
    holding: set[Session] = set()  # the model: sessions with a stream or inside their reattach window
    refusals = 0

    async def new_session() -> Session:
        window = rng.choice((0.0, 600.0))
        return await registry.start(SessionConfig(providers=STAND_IN_CHOICES, reattach_window_seconds=window))

    for _ in range(6):
        sessions.append(await new_session())
    for _ in range(steps):
        session = rng.choice(sessions)
        action = rng.choice(("attach", "attach", "take_over", "detach", "close"))
        if action in ("attach", "take_over"):
            take_over = action == "take_over"
            try:
                attached[session] = session.attach_stream(SPEC, take_over=take_over)
                holding.add(session)
            except Aborted:
                assert session in attached and not take_over
            except ResourceExhausted as exc:
                assert exc.limit == "max_streams"
                assert session not in holding and len(holding) >= limit
                refusals += 1
        elif action == "detach" and session in attached:
            session.detach_stream(attached.pop(session))
            if session.config.reattach_window_seconds == 0:
                holding.discard(session)
        elif action == "close":
            await session.close("the step says so")
            attached.pop(session, None)
            holding.discard(session)
            sessions[sessions.index(session)] = await new_session()
        assert registry.stream_slots.in_use == len(holding) <= limit
    assert refusals > 20 and len(holding) > 0  # the steps did reach the limit, and came back from it
    await registry.shutdown()
    assert registry.stream_slots.in_use == 0
    workers.close()
