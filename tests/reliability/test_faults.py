"""Faults: crashing and hanging providers, cancellation, deadlines, disconnects, stalled readers, SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import grpc
import numpy as np
import pytest

from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2, events_pb2, session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, open_stream
from tests.helpers import eventually, server_process
from tests.reliability.support import ErrorLog, contiguous, final, outcome_of, wait_frames

STALL_SECONDS = 1.0
PLAYED, INTERRUPTED, FAILED = (
    session_pb2.UTTERANCE_STATE_PLAYED, session_pb2.UTTERANCE_STATE_INTERRUPTED, session_pb2.UTTERANCE_STATE_FAILED,
)


@pytest.fixture
def server_settings(server_settings: ServerSettings) -> ServerSettings:
    return server_settings.replace(provider_stall_seconds=STALL_SECONDS, stream_frame_buffer=5)


def faulty(stage: str, fault: str) -> session_pb2.ProvidersConfig:
    """Stand-in providers whose `stage` meets `fault` on the word "boom"."""
    providers = session_pb2.ProvidersConfig()
    providers.CopyFrom(STAND_IN_PROVIDERS)
    getattr(providers, stage).options.update({"fault_word": "boom", "fault": fault})
    return providers


async def start(stub, **config) -> str:
    config.setdefault("providers", STAND_IN_PROVIDERS)
    return (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(**config)))).session.name


async def say(stub, session: str, text: str) -> str:
    return (await stub.Say(pb.SayRequest(session=session, text=text))).utterance.id


@pytest.mark.parametrize("fault", ["raise", "hang"])
async def test_a_broken_tts_fails_only_its_utterance(stub, fault: str) -> None:
    bystander = await start(stub)
    watching = await open_stream(stub, bystander)
    await say(stub, bystander, "la " * 200)
    session = await start(stub, providers=faulty("tts", fault))
    stream = await open_stream(stub, session)
    with ErrorLog() as errors:
        before, broken, after = [await say(stub, session, t) for t in ("hello there", "boom goes this", "and on")]
        states = [(await final(stub, session, u)).state for u in (before, broken, after)]
    assert states == [PLAYED, FAILED, PLAYED]
    failed = await final(stub, session, broken)
    expected = "stand-in fault" if fault == "raise" else f"produced nothing for {STALL_SECONDS:g} s"
    assert expected in failed.error
    await stream.wait_for(lambda: any(w.utterance_id == broken for w in stream.of("warning")))
    warning = next(w for w in stream.of("warning") if w.utterance_id == broken)
    assert warning.reason == ("SPEECH_FAILED" if fault == "raise" else "TTS_FAILED")
    # a crash is logged once, as the utterance's failure; a hang is an expected timeout, not an error
    assert [r.getMessage() for r in errors.records] == (["speech failed"] if fault == "raise" else [])
    assert (await stub.Get(pb.GetRequest(session=session))).session.status == session_pb2.SESSION_STATUS_ACTIVE
    assert contiguous(watching) and contiguous(stream)
    await watching.aclose()
    await stream.aclose()


@pytest.mark.parametrize("fault", ["raise", "hang"])
async def test_a_broken_llm_fails_only_its_reply(stub, fault: str) -> None:
    session = await start(stub, providers=faulty("llm", fault))
    broken = (await stub.Reply(pb.ReplyRequest(session=session, user_text="boom now"))).utterance.id
    fine = (await stub.Reply(pb.ReplyRequest(session=session, user_text="hello"))).utterance.id
    with ErrorLog():
        assert (await final(stub, session, broken)).state == FAILED
        answered = await final(stub, session, fine)
    assert answered.state == PLAYED and answered.text == "You said: hello"


async def test_interrupt_and_close_cancel_the_model_and_speech_work(server, stub) -> None:
    def working(utterance: str) -> list[asyncio.Task]:
        return [t for t in asyncio.all_tasks() if t.get_name() == f"speak-{utterance}" and not t.done()]

    session = await start(stub, providers=faulty("llm", "hang"))
    thinking = (await stub.Reply(pb.ReplyRequest(session=session, user_text="boom"))).utterance.id
    await wait_until(lambda: working(thinking))  # the model is being waited on
    cut = (await stub.Interrupt(pb.InterruptRequest(session=session))).interrupted
    assert [u.id for u in cut] == [thinking] and cut[0].state == INTERRUPTED
    await wait_until(lambda: not working(thinking))  # its model call and synthesis were cancelled

    baseline = len(asyncio.all_tasks())
    again = (await stub.Reply(pb.ReplyRequest(session=session, user_text="boom"))).utterance.id
    await wait_until(lambda: working(again))
    await stub.Close(pb.CloseRequest(session=session))
    assert (await final(stub, session, again)).state == INTERRUPTED
    await wait_until(lambda: len(asyncio.all_tasks()) <= baseline)  # no task of the session is left
    assert not working(again)


async def wait_until(predicate, timeout: float = 10.0) -> None:
    """Wait for a condition of the in-process server (a bound on a hang, not a speed claim)."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_wait_utterance_honours_the_call_deadline(stub) -> None:
    session = await start(stub)
    long = await say(stub, session, "la " * 100)
    request = pb.WaitUtteranceRequest(session=session, utterance_id=long)
    timed_out = await outcome_of(stub.WaitUtterance(request, timeout=0.2))
    assert timed_out.code is grpc.StatusCode.DEADLINE_EXCEEDED
    # the deadline ended the wait, not the speech
    snapshot = (await stub.Get(pb.GetRequest(session=session))).session
    assert snapshot.utterances[0].state in (session_pb2.UTTERANCE_STATE_SPEAKING, session_pb2.UTTERANCE_STATE_QUEUED)
    await stub.Interrupt(pb.InterruptRequest(session=session))
    assert (await stub.WaitUtterance(request, timeout=5)).utterance.state == INTERRUPTED


async def test_disconnected_stream_may_come_back_within_the_window(stub) -> None:
    session = await start(stub, reattach_window_seconds=1.0)
    first = await open_stream(stub, session)
    await wait_frames(first, 2)
    await first.aclose()  # the client vanished mid-stream

    second = await open_stream(stub, session)
    await wait_frames(second, 2)
    assert (await stub.Get(pb.GetRequest(session=session))).session.status == session_pb2.SESSION_STATUS_ACTIVE
    await second.aclose()

    async def closed() -> session_pb2.Session:
        while (s := (await stub.Get(pb.GetRequest(session=session))).session).status != session_pb2.SESSION_STATUS_CLOSED:
            await asyncio.sleep(0.05)
        return s

    gone = await asyncio.wait_for(closed(), 10)
    assert gone.close_reason == "audio stream did not come back"


async def test_a_stalled_reader_loses_frames_not_the_session(server, stub) -> None:
    session = await start(stub)
    await say(stub, session, "la " * 300)
    # a client that stops reading: without BDP probing its receive window stays at 64 KiB
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=[("grpc.http2.bdp_probe", 0)])
    call = pb_grpc.AgentSessionServiceStub(channel).StreamAudio()
    config = pb.StreamConfig(session=session, output_format=audio_pb2.AudioFormat(sample_rate_hz=48000))
    await call.write(pb.StreamAudioRequest(config=config))
    frames: list[int] = []
    dropped: list[events_pb2.FramesDropped] = []
    first = await call.read()
    frames.append(first.audio.sequence)

    async def overflowed() -> bool:  # the reader stalls: flow control fills up, the outbox overflows
        return (await stub.Get(pb.GetRequest(session=session))).session.metrics.frames_dropped > 10

    await eventually(overflowed, what="frames dropped for the stalled reader")

    for _ in range(2000):  # then it reads again
        if dropped and len(frames) > 100:
            break
        response = await asyncio.wait_for(call.read(), 10)
        if response.WhichOneof("message") == "audio":
            frames.append(response.audio.sequence)
        elif response.event.WhichOneof("event") == "frames_dropped":
            dropped.append(response.event.frames_dropped)
    call.cancel()
    await channel.close()
    gaps = sum(b - a - 1 for a, b in zip(frames, frames[1:], strict=False))
    assert dropped and gaps > 0
    assert gaps <= dropped[-1].total  # every missing sequence number was reported as dropped
    assert frames == sorted(frames)  # never reordered
    assert (await stub.Get(pb.GetRequest(session=session))).session.status == session_pb2.SESSION_STATUS_ACTIVE


async def test_sigterm_while_streaming_ends_the_stream_cleanly_and_exits_zero() -> None:
    # --drain-timeout 0: no time for the session to finish
    async with server_process("--allow-stand-in-providers", "--drain-timeout", "0") as (proc, channel):
        stub = pb_grpc.AgentSessionServiceStub(channel)
        session = await start(stub)
        stream = await open_stream(stub, session)
        await say(stub, session, "la " * 100)
        speech = np.zeros(16000, dtype=np.int16)
        sending = asyncio.create_task(stream.send(speech))
        await wait_frames(stream, 10)

        proc.send_signal(signal.SIGTERM)

        await stream.wait_for(lambda: stream.of("session_closed"))
        stream.stopped_sending = True  # a caller stops talking when the session closes...
        await asyncio.wait_for(sending, 5)
        await stream.call.done_writing()
        await asyncio.wait_for(stream._reader, 10)  # ...and the server ends the stream...
        assert await stream.call.code() == grpc.StatusCode.OK  # ...with OK, not a cut connection
        assert stream.events[-1].session_closed.reason == "server shutting down"
        assert stream.utterance_states(stream.of("utterance_updated")[0].utterance.id)[-1] == INTERRUPTED
        assert contiguous(stream)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        log = (await proc.stderr.read()).decode()
        assert '"level": "ERROR"' not in log and "Traceback" not in log
