"""Phone calls over the media-stream protocol: a provider's client, the bridge, a real Parley server."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from parley.audio import g711
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, open_stream
from tests.phone.conftest import with_settings
from tests.phone.provider import FRAME_BYTES, Provider

SILENCE = b"\xff" * FRAME_BYTES


def speech_in(provider: Provider) -> list[bytes]:
    return [r.payload for r in provider.of("media") if r.payload != SILENCE]


def tone_hz(mulaw: bytes) -> float:
    pcm = g711.mulaw_decode(mulaw).astype(np.float64)
    return float(np.argmax(np.abs(np.fft.rfft(pcm))) * 8000 / len(pcm))


async def live_session(stub) -> str:  # type: ignore[no-untyped-def]
    sessions = (await stub.List(pb.ListRequest())).sessions
    assert len(sessions) == 1
    return sessions[0].name


async def test_a_call_starts_a_session_streams_g711_and_closes_it_on_stop(phone, stub) -> None:  # type: ignore[no-untyped-def]
    provider = phone.provider()
    await provider.open()
    await provider.wait_for(lambda: len(provider.of("media")) >= 5)
    assert all(len(r.payload) == FRAME_BYTES for r in provider.of("media"))  # 20 ms of µ-law each
    name = await live_session(stub)
    session = (await stub.Get(pb.GetRequest(session=name))).session
    assert session.config.labels["phone_call_sid"] == provider.call_sid
    assert session.config.labels["phone_stream_sid"] == provider.stream_sid

    said = (await stub.Say(pb.SayRequest(session=name, text="hello caller"))).utterance
    await provider.wait_for(lambda: len(speech_in(provider)) >= 10)
    assert abs(tone_hz(b"".join(speech_in(provider))) - 440) < 15  # the agent's voice (the tone stand-in)
    await stub.WaitUtterance(pb.WaitUtteranceRequest(session=name, utterance_id=said.id))

    await provider.hang_up()
    await provider.wait_for(lambda: provider.closed)
    assert provider.close_code == 1000
    closed = (await stub.Get(pb.GetRequest(session=name))).session
    assert closed.close_reason == "phone call ended"
    await provider.aclose()


async def test_a_dropped_socket_ends_the_call_and_its_session(phone, stub) -> None:  # type: ignore[no-untyped-def]
    provider = phone.provider()
    await provider.open()
    await provider.wait_for(lambda: provider.of("media"))
    name = await live_session(stub)
    await provider.aclose()  # no stop message: the connection just goes away
    deadline = time.monotonic() + 10
    while (await stub.Get(pb.GetRequest(session=name))).session.status != session_pb2.SESSION_STATUS_CLOSED \
            or phone.bridge.calls:
        assert time.monotonic() < deadline, "the call's session stayed open, or the call was never let go"
        await asyncio.sleep(0.05)


async def test_marks_follow_each_utterance_and_come_back_once_heard(phone, stub) -> None:  # type: ignore[no-untyped-def]
    provider = phone.provider()
    await provider.open()
    await provider.wait_for(lambda: provider.of("media"))
    name = await live_session(stub)
    first = (await stub.Say(pb.SayRequest(session=name, text="one"))).utterance
    second = (await stub.Say(pb.SayRequest(session=name, text="two two"))).utterance
    await provider.wait_for(lambda: len(provider.of("mark")) == 2)
    assert [m.name for m in provider.of("mark")] == [first.id, second.id]
    for mark in provider.of("mark"):  # each mark right after the utterance's last audio: only silence follows
        position = provider.received.index(mark)
        before = [r.payload for r in provider.received[:position] if r.kind == "media"]
        assert before[-1] != SILENCE or before[-2] != SILENCE
    last = provider.received.index(provider.of("mark")[-1])
    assert all(r.payload == SILENCE for r in provider.received[last:] if r.kind == "media")  # none of it after
    call = next(iter(phone.bridge.calls))
    await provider.wait_for(lambda: list(call.heard) == [first.id, second.id])  # echoed once played to the caller
    await provider.aclose()


async def test_interrupting_the_agent_clears_the_providers_buffer(serve_phone, phone_settings, stub) -> None:  # type: ignore[no-untyped-def]
    phone = await serve_phone(with_settings(phone_settings, lead_ms=300))  # the provider holds 300 ms of audio
    provider = phone.provider()
    await provider.open()
    await provider.wait_for(lambda: provider.of("media"))
    name = await live_session(stub)
    said = (await stub.Say(pb.SayRequest(session=name, text="a long sentence the caller will not hear out"))).utterance
    await provider.wait_for(lambda: len(speech_in(provider)) >= 25)
    await stub.Interrupt(pb.InterruptRequest(session=name))
    await provider.wait_for(lambda: provider.of("clear"))
    clear_at = provider.received.index(provider.of("clear")[0])
    await provider.wait_for(lambda: len(provider.received) > clear_at + 20)
    after = [r.payload for r in provider.received[clear_at:] if r.kind == "media"]
    assert all(p == SILENCE for p in after[3:])  # the cut's short fade, then silence
    assert said.id not in [m.name for m in provider.of("mark")]  # an interrupted utterance gets no mark
    await provider.aclose()


async def test_a_call_can_join_a_session_the_backend_started(phone, stub) -> None:  # type: ignore[no-untyped-def]
    config = session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS, auto_reply=False)
    name = (await stub.Start(pb.StartRequest(config=config))).session.name
    provider = phone.provider(custom_parameters={"session": name})
    await provider.open()
    await provider.wait_for(lambda: provider.of("media"))
    await stub.Say(pb.SayRequest(session=name, text="joined"))
    await provider.wait_for(lambda: provider.of("mark"))
    await provider.hang_up()
    await provider.wait_for(lambda: provider.closed)
    session = (await stub.Get(pb.GetRequest(session=name))).session
    assert session.status == session_pb2.SESSION_STATUS_ACTIVE  # its owner closes it, not the call
    await provider.aclose()


async def test_the_callers_voice_reaches_the_session(phone, stub) -> None:  # type: ignore[no-untyped-def]
    provider = phone.provider()
    await provider.open()
    await provider.wait_for(lambda: provider.of("media"))
    name = await live_session(stub)
    events = stub.WatchEvents(pb.WatchEventsRequest(session=name))
    t = np.arange(8000) / 8000
    await provider.say(g711.mulaw_encode((8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)))
    async for response in events:  # the energy VAD stand-in hears the caller's µ-law, decoded
        change = response.event.user_state_changed
        if change.new_state == session_pb2.USER_STATE_SPEAKING:
            break
    events.cancel()
    await provider.aclose()


@pytest.mark.parametrize(("fmt", "reason"), [(("audio/l16", 16000), "unsupported media format"),
                                             (("audio/x-mulaw", 16000), "unsupported media format")])
async def test_unsupported_media_is_refused_with_a_reason(phone, stub, fmt, reason) -> None:  # type: ignore[no-untyped-def]
    provider = phone.provider(encoding=fmt[0], sample_rate=fmt[1])
    await provider.open()
    await provider.wait_for(lambda: provider.closed)
    assert provider.close_code == 1003 and reason in provider.close_reason
    assert not (await stub.List(pb.ListRequest())).sessions  # no session was started for it
    await provider.aclose()


async def test_a_wrong_secret_or_no_start_is_refused(serve_phone, phone_settings) -> None:  # type: ignore[no-untyped-def]
    phone = await serve_phone(with_settings(phone_settings, secret="s3cret", start_timeout_seconds=0.5))
    wrong = phone.provider(custom_parameters={"secret": "guess"})
    await wrong.open()
    await wrong.wait_for(lambda: wrong.closed)
    assert (wrong.close_code, wrong.close_reason) == (1008, "forbidden")
    silent = phone.provider()
    await silent.open(start=False)
    await silent.send("not json at all")  # ignored, like any unknown frame
    await silent.wait_for(lambda: silent.closed)
    assert (silent.close_code, silent.close_reason) == (1008, "no start message")
    right = phone.provider(custom_parameters={"secret": "s3cret"})
    await right.open()
    await right.wait_for(lambda: right.of("media"))
    for p in (wrong, silent, right):
        await p.aclose()


async def test_a_session_that_does_not_exist_ends_the_call_with_parleys_status(phone) -> None:  # type: ignore[no-untyped-def]
    provider = phone.provider(custom_parameters={"session": "sessions/0000000000000000"})
    await provider.open()
    await provider.wait_for(lambda: provider.closed)
    assert (provider.close_code, provider.close_reason) == (1011, "parley: NOT_FOUND")
    await provider.aclose()


async def test_the_session_closing_ends_the_call_normally_while_the_caller_talks(phone, stub) -> None:  # type: ignore[no-untyped-def]
    for attempt in range(20):  # the caller's media overlaps the close at a different point each time
        provider = phone.provider(stream_sid=f"MZ{attempt:032d}")  # a new call, not a retried start
        await close_while_talking(provider, stub, frames=attempt % 5)
        assert (provider.close_code, provider.close_reason) == (1000, "call ended"), attempt
        await provider.aclose()


async def close_while_talking(provider: Provider, stub, frames: int) -> None:  # type: ignore[no-untyped-def]
    """The backend closes the call's session while the caller's media goes out faster than real time, once
    `frames` more of the agent's frames have come."""
    await provider.open()
    await provider.wait_for(lambda: provider.of("media"))
    talking = asyncio.create_task(provider.say(SILENCE * 2000, speed=10))
    heard = len(provider.of("media"))
    await provider.wait_for(lambda: len(provider.of("media")) >= heard + frames)
    active = [s.name for s in (await stub.List(pb.ListRequest())).sessions
              if s.status == session_pb2.SESSION_STATUS_ACTIVE]
    assert len(active) == 1, active
    await stub.Close(pb.CloseRequest(session=active[0], reason="done"))
    await provider.wait_for(lambda: provider.closed)
    talking.cancel()
    await asyncio.gather(talking, return_exceptions=True)


@pytest.mark.parametrize("server_settings", [ServerSettings(
    host="127.0.0.1", port=0, shutdown_grace=1.0, log_level="WARNING", allow_stand_in_providers=True, max_streams=1)])
async def test_a_call_past_max_streams_is_refused_with_that_status(phone, stub) -> None:  # type: ignore[no-untyped-def]
    """The server carries its one stream already: each new call ends at once with RESOURCE_EXHAUSTED, never
    INTERNAL, although the caller's media is already flowing; the session the bridge started is closed."""
    busy = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS))))
    admitted = await open_stream(stub, busy.session.name)
    for attempt in range(10):
        provider = phone.provider(stream_sid=f"MZ{attempt:032d}")
        await provider.open()
        talking = asyncio.create_task(provider.say(SILENCE * 500, speed=5))
        await provider.wait_for(lambda p=provider: p.closed)
        assert (provider.close_code, provider.close_reason) == (1011, "parley: RESOURCE_EXHAUSTED"), attempt
        talking.cancel()
        await asyncio.gather(talking, return_exceptions=True)
        await provider.aclose()
    sessions = (await stub.List(pb.ListRequest())).sessions
    assert [s.name for s in sessions if s.status == session_pb2.SESSION_STATUS_ACTIVE] == [busy.session.name]
    assert admitted.frames and admitted.error is None  # the admitted call went on
    await admitted.aclose()
