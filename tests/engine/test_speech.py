"""Say, Reply, Interrupt and utterance lifecycles over a real server and a real stream."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import open_stream, rms
from tests.helpers import error_details, eventually

PLAYED, INTERRUPTED, SPEAKING, QUEUED = (
    session_pb2.UTTERANCE_STATE_PLAYED, session_pb2.UTTERANCE_STATE_INTERRUPTED,
    session_pb2.UTTERANCE_STATE_SPEAKING, session_pb2.UTTERANCE_STATE_QUEUED,
)
LONG_TEXT = "this sentence is long enough to keep the agent talking for several seconds at least"


async def wait_done(stub, session: str, utterance_id: str) -> session_pb2.Utterance:
    reply = await stub.WaitUtterance(pb.WaitUtteranceRequest(session=session, utterance_id=utterance_id), timeout=30)
    return reply.utterance


async def wait_state(stub, session: str, utterance_id: str, state: int) -> None:
    """Until Get shows the utterance in `state` (or past it)."""
    async def reached() -> bool:
        got = (await stub.Get(pb.GetRequest(session=session))).session
        return any(u.id == utterance_id and u.state >= state for u in got.utterances)

    await eventually(reached, what=f"{utterance_id} reaching state {state}")


async def wait_speaking(client, utterance_id: str) -> None:
    await client.wait_for(lambda: SPEAKING in client.utterance_states(utterance_id))


async def test_say_is_played_only_after_its_last_frame(stub, start_session) -> None:
    session = await start_session()
    client = await open_stream(stub, session.name)
    said = (await stub.Say(pb.SayRequest(session=session.name, text="hello there"))).utterance
    assert said.state == QUEUED
    done = await wait_done(stub, session.name, said.id)
    assert done.state == PLAYED and done.heard_text == "hello there"
    await client.wait_for(lambda: PLAYED in client.utterance_states(said.id))
    await client.wait_for(lambda: len(client.of("agent_state_changed")) == 2)

    speech = [f for f in client.frames if f.utterance_id == said.id]
    assert all(len(f.pcm) == 480 for f in client.frames)  # 20 ms at the default 24 kHz
    audio = np.concatenate([f.pcm for f in speech])
    assert rms(audio) > 1000
    # tone stand-in: 11 characters x 60 ms of audio, within a frame of resampling edge
    assert abs(len(audio) / 24000 - 0.66) < 0.03
    assert 0 < client.position_of_last_frame(said.id) < client.position_of_state(said.id, PLAYED)
    assert client.utterance_states(said.id) == [QUEUED, SPEAKING, PLAYED]
    agent_states = [s.new_state for s in client.of("agent_state_changed")]
    assert agent_states == [session_pb2.AGENT_STATE_SPEAKING, session_pb2.AGENT_STATE_IDLE]
    history = (await stub.Get(pb.GetRequest(session=session.name))).session.chat_history
    assert [(m.role, m.content) for m in history] == [(session_pb2.CHAT_ROLE_ASSISTANT, "hello there")]
    await client.aclose()


async def test_interrupt_silences_within_a_frame_and_keeps_only_heard_text(stub, start_session) -> None:
    session = await start_session()
    client = await open_stream(stub, session.name)
    said = (await stub.Say(pb.SayRequest(session=session.name, text=LONG_TEXT))).utterance
    await wait_speaking(client, said.id)
    await client.wait_for(lambda: sum(f.utterance_id == said.id for f in client.frames) >= 30)  # 0.6 s heard
    cut = (await stub.Interrupt(pb.InterruptRequest(session=session.name, fade_ms=20))).interrupted
    assert [u.id for u in cut] == [said.id]
    done = await wait_done(stub, session.name, said.id)
    assert done.state == INTERRUPTED
    assert done.heard_text and len(done.heard_text) < len(LONG_TEXT)
    assert LONG_TEXT.startswith(done.heard_text)
    assert cut[0].heard_text == done.heard_text and cut[0].played_ms == done.played_ms  # the call says the same
    heard_ms = 60 * len(done.heard_text)  # tone stand-in: 60 ms per character, spaces silent
    assert heard_ms <= done.played_ms < heard_ms + 60 * (len(LONG_TEXT[len(done.heard_text):].split()[0]) + 2)

    await client.wait_for(lambda: client.of("clear_audio"))
    clear_at = client.items.index("clear_audio")
    await client.wait_for(lambda: client.items[clear_at:].count("frame") > 15)  # 0.3 s of what came after
    frames_after = [f for f in client.frames[client.items[:clear_at].count("frame"):]]
    loud = [i for i, f in enumerate(frames_after) if rms(f.pcm) > 50]
    assert loud in ([], [0]), f"speech energy in frames {loud} after the interrupt"
    assert len(frames_after) > 5  # the stream went on, silent

    interruption = client.of("interruption")[0]
    assert interruption.utterance_id == said.id and interruption.by_request
    history = (await stub.Get(pb.GetRequest(session=session.name))).session.chat_history
    assert history[-1].content == done.heard_text and history[-1].interrupted
    await client.aclose()


async def test_interrupt_scope_all_drops_queued(stub, start_session) -> None:
    session = await start_session()
    first = (await stub.Say(pb.SayRequest(session=session.name, text=LONG_TEXT))).utterance
    second = (await stub.Say(pb.SayRequest(session=session.name, text="second"))).utterance
    third = (await stub.Say(pb.SayRequest(session=session.name, text="third"))).utterance
    await wait_state(stub, session.name, first.id, SPEAKING)
    cut = (await stub.Interrupt(pb.InterruptRequest(session=session.name))).interrupted
    assert [u.id for u in cut] == [first.id]  # scope CURRENT: the queue plays on
    assert (await wait_done(stub, session.name, second.id)).state == PLAYED
    fourth = (await stub.Say(pb.SayRequest(session=session.name, text=LONG_TEXT))).utterance
    fifth = (await stub.Say(pb.SayRequest(session=session.name, text="fifth"))).utterance
    await wait_state(stub, session.name, fourth.id, SPEAKING)
    cut = (await stub.Interrupt(pb.InterruptRequest(session=session.name, scope=pb.INTERRUPT_SCOPE_ALL))).interrupted
    assert [u.id for u in cut] == [fourth.id, fifth.id] or [u.id for u in cut] == [third.id, fourth.id, fifth.id]
    fifth_done = await wait_done(stub, session.name, fifth.id)
    assert fifth_done.state == INTERRUPTED and fifth_done.heard_text == ""


async def test_interrupt_on_idle_session_is_a_no_op(stub, start_session) -> None:
    session = await start_session()
    assert list((await stub.Interrupt(pb.InterruptRequest(session=session.name))).interrupted) == []


async def test_reply_while_busy_follows_policy(stub, start_session) -> None:
    session = await start_session()
    name = session.name
    talking = (await stub.Say(pb.SayRequest(session=name, text=LONG_TEXT))).utterance
    await wait_state(stub, name, talking.id, SPEAKING)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Reply(pb.ReplyRequest(session=name, user_text="hi", busy_policy=pb.BUSY_POLICY_REJECT))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(err.value)[1] == "AGENT_BUSY"

    queued = (await stub.Reply(pb.ReplyRequest(session=name, user_text="one"))).utterance  # QUEUE is the default
    assert queued.state == QUEUED
    assert (await stub.Get(pb.GetRequest(session=name))).session.utterances[-1].state == QUEUED
    pushy = (await stub.Reply(
        pb.ReplyRequest(session=name, user_text="two", busy_policy=pb.BUSY_POLICY_INTERRUPT))).utterance
    assert (await wait_done(stub, name, talking.id)).state == INTERRUPTED
    assert (await wait_done(stub, name, queued.id)).state == INTERRUPTED
    answered = await wait_done(stub, name, pushy.id)
    assert answered.state == PLAYED and answered.text == "You said: two"

    again = (await stub.Reply(pb.ReplyRequest(session=name, user_text="three"))).utterance
    assert (await wait_done(stub, name, again.id)).text == "You said: three"


async def test_request_id_replay_never_speaks_twice(stub, start_session) -> None:
    session = await start_session()
    request = pb.SayRequest(session=session.name, text="only once", request_id="say-1")
    first, second = await asyncio.gather(stub.Say(request), stub.Say(request))
    third = await stub.Say(request)
    assert first.utterance.id == second.utterance.id == third.utterance.id
    await wait_done(stub, session.name, first.utterance.id)
    got = (await stub.Get(pb.GetRequest(session=session.name))).session
    assert [u.text for u in got.utterances] == ["only once"]
    assert [m.content for m in got.chat_history] == ["only once"]


async def test_non_interruptible_speech_survives_barge_in_and_yields_to_force(stub, start_session) -> None:
    session = await start_session(interruption=session_pb2.InterruptionConfig(min_duration_seconds=0.2))
    client = await open_stream(stub, session.name)
    said = (await stub.Say(pb.SayRequest(session=session.name, text=LONG_TEXT, interruptible=False))).utterance
    await wait_speaking(client, said.id)
    tone = (8000 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)).astype(np.int16)
    await client.send(tone)  # a second of the caller's voice
    await client.send_silence(0.3)
    assert client.of("interruption") == []
    assert list((await stub.Interrupt(pb.InterruptRequest(session=session.name))).interrupted) == []
    got = (await stub.Get(pb.GetRequest(session=session.name))).session
    assert got.utterances[-1].state == SPEAKING
    cut = (await stub.Interrupt(pb.InterruptRequest(session=session.name, force=True))).interrupted
    assert [u.id for u in cut] == [said.id]
    assert (await wait_done(stub, session.name, said.id)).state == INTERRUPTED
    await client.aclose()


async def test_caller_voice_interrupts_interruptible_speech(stub, start_session) -> None:
    session = await start_session(interruption=session_pb2.InterruptionConfig(
        mode=session_pb2.INTERRUPTION_MODE_VAD_ONLY, min_duration_seconds=0.2), auto_reply=False)
    client = await open_stream(stub, session.name)
    said = (await stub.Say(pb.SayRequest(session=session.name, text=LONG_TEXT))).utterance
    await wait_speaking(client, said.id)
    tone = (8000 * np.sin(2 * np.pi * 300 * np.arange(8000) / 16000)).astype(np.int16)
    await client.send(tone)
    done = await wait_done(stub, session.name, said.id)
    assert done.state == INTERRUPTED
    kinds = [i.kind for i in client.of("interruption")]
    assert kinds[-1] == 1 and not client.of("interruption")[-1].by_request  # INTERRUPTED, by the voice
    await client.aclose()


async def test_empty_say_is_invalid(stub, start_session) -> None:
    session = await start_session()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Say(pb.SayRequest(session=session.name, text="  "))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(err.value)[0][0][0] == "text"
