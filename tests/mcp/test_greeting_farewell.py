"""Greeting and farewell: the gRPC form of an agent's on_enter / on_exit, heard on the caller's stream."""

from __future__ import annotations

import asyncio

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import open_stream, rms
from tests.engine.test_speech import INTERRUPTED, LONG_TEXT, PLAYED, wait_done, wait_speaking
from tests.mcp.conftest import providers_with

GREETING, FAREWELL = session_pb2.UTTERANCE_SOURCE_GREETING, session_pb2.UTTERANCE_SOURCE_FAREWELL
AUDIBLE = 500  # rms of the tone stand-in's speech is in the thousands; silence is 0


def by_source(client, source: int) -> list[session_pb2.Utterance]:
    seen: dict[str, session_pb2.Utterance] = {}
    for update in client.of("utterance_updated"):
        if update.utterance.source == source:
            seen[update.utterance.id] = update.utterance
    return list(seen.values())


def first_audible_frame(client):
    return next(f for f in client.frames if rms(f.pcm) > AUDIBLE)


def position_of_event(client, kind: str) -> int:
    return client.items.index(kind)


async def test_greeting_is_heard_on_the_stream_before_any_user_input(stub) -> None:
    config = session_pb2.SessionConfig(
        providers=providers_with(), greeting=session_pb2.AgentAction(say_text="Hello, how can I help you today?"))
    session = (await stub.Start(pb.StartRequest(config=config))).session
    client = await open_stream(stub, session.name)  # no caller audio is ever sent in this test
    await client.wait_for(lambda: by_source(client, GREETING) and by_source(client, GREETING)[-1].state == PLAYED)
    greeting = by_source(client, GREETING)[-1]
    assert greeting.text == "Hello, how can I help you today?"
    heard = [f for f in client.frames if f.utterance_id == greeting.id]
    assert heard and max(rms(f.pcm) for f in heard) > AUDIBLE
    assert first_audible_frame(client).utterance_id == greeting.id  # the first thing the caller hears
    assert client.position_of_last_frame(greeting.id) < client.position_of_state(greeting.id, PLAYED)
    got = (await stub.Get(pb.GetRequest(session=session.name))).session
    assert [(m.role, m.content) for m in got.chat_history] == [
        (session_pb2.CHAT_ROLE_ASSISTANT, "Hello, how can I help you today?")]
    await client.aclose()


async def test_greeting_by_instructions_is_a_reply_said_once(stub) -> None:
    providers = providers_with()
    providers.llm.options.update({"template": "Welcome! {instructions}"})
    config = session_pb2.SessionConfig(
        providers=providers, greeting=session_pb2.AgentAction(reply_instructions="Offer help with the order."))
    session = (await stub.Start(pb.StartRequest(config=config))).session
    client = await open_stream(stub, session.name)
    await client.wait_for(lambda: by_source(client, GREETING) and by_source(client, GREETING)[-1].state == PLAYED)
    greeting = by_source(client, GREETING)[-1]
    assert greeting.text == "Welcome! Offer help with the order."
    assert first_audible_frame(client).utterance_id == greeting.id
    # the caller comes back on a new stream: no second greeting
    await client.aclose()
    again = await open_stream(stub, session.name)
    said = (await stub.Say(pb.SayRequest(session=session.name, text="still here"))).utterance
    assert (await wait_done(stub, session.name, said.id)).state == PLAYED
    await again.wait_for(lambda: any(f.utterance_id == said.id for f in again.frames))
    assert by_source(again, GREETING) == []
    assert first_audible_frame(again).utterance_id == said.id
    await again.aclose()


async def test_farewell_is_heard_before_the_session_closed_event(stub) -> None:
    session = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(providers=providers_with())))).session
    client = await open_stream(stub, session.name)
    talking = (await stub.Say(pb.SayRequest(session=session.name, text=LONG_TEXT))).utterance
    await wait_speaking(client, talking.id)
    farewell = pb.Farewell(action=session_pb2.AgentAction(say_text="Goodbye, and thank you for calling."))
    closed = (await stub.Close(pb.CloseRequest(session=session.name, reason="call ended", farewell=farewell))).session
    assert closed.status == session_pb2.SESSION_STATUS_CLOSED and closed.close_reason == "call ended"
    await asyncio.wait_for(client._reader, 10)  # the stream ends after SessionClosed

    said = by_source(client, FAREWELL)
    assert [(u.text, u.state) for u in said] == [("Goodbye, and thank you for calling.", PLAYED)]
    bye = said[0].id
    closed_at = position_of_event(client, "session_closed")
    assert client.items[-1] == "session_closed"
    heard = [f for f in client.frames if f.utterance_id == bye]
    assert heard and max(rms(f.pcm) for f in heard) > AUDIBLE
    assert client.position_of_last_frame(bye) < client.position_of_state(bye, PLAYED) < closed_at
    # the speech it cut short was interrupted, and the caller was told to drop its buffered audio first
    assert talking.id in [c.utterance_id for c in client.of("clear_audio")]
    assert client.items.index("clear_audio") < client.items.index("frame", client.position_of_last_frame(talking.id))
    assert {u.id: u.state for u in closed.utterances}[talking.id] == INTERRUPTED
    assert closed.chat_history[-1].content == "Goodbye, and thank you for calling."


async def test_a_farewell_that_runs_long_is_cut_at_its_timeout(stub) -> None:
    providers = providers_with()
    providers.llm.options.update({"template": "{instructions}", "token_delay_ms": 5000})
    session = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(providers=providers)))).session
    client = await open_stream(stub, session.name)
    await client.wait_for(lambda: client.frames)  # attached
    slow = session_pb2.AgentAction(reply_instructions="Say goodbye slowly.")
    farewell = pb.Farewell(action=slow, timeout_seconds=0.3)
    closed = (await stub.Close(pb.CloseRequest(session=session.name, farewell=farewell))).session
    assert closed.status == session_pb2.SESSION_STATUS_CLOSED
    await asyncio.wait_for(client._reader, 10)
    assert client.items[-1] == "session_closed"
    said = [u for u in closed.utterances if u.source == FAREWELL]
    assert [u.state for u in said] == [INTERRUPTED]  # cut when its time was up, never left dangling
