"""StreamAudio: one stream per session, take-over, output formats, slow readers, embedding hooks."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import grpc
import numpy as np
import pytest

from parley.providers.workers import Workers
from parley.sessions.config import ProviderChoice, SessionConfig, ThinkingAudioConfig
from parley.sessions.limits import RegistryLimits
from parley.sessions.registry import SessionRegistry
from parley.sessions.session_types import SessionHooks
from parley.sessions.states import UtteranceState
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2, session_pb2
from tests.engine.conftest import STAND_IN_CHOICES, open_stream, rms
from tests.engine.test_speech import wait_done
from tests.helpers import error_details, eventually


async def test_second_stream_is_aborted_unless_it_takes_over(stub, start_session) -> None:
    session = await start_session()
    first = await open_stream(stub, session.name)
    await first.wait_for(lambda: len(first.frames) > 2)
    second = await open_stream(stub, session.name, attached=False)
    await second.wait_for(lambda: second.error is not None)
    assert second.error.code() == grpc.StatusCode.ABORTED
    assert error_details(second.error)[1] == "STREAM_ATTACHED"

    third = await open_stream(stub, session.name, take_over=True)
    await third.wait_for(lambda: len(third.frames) > 2)
    await first.wait_for(lambda: first.error is not None)
    assert first.error.code() == grpc.StatusCode.ABORTED  # the old stream is told why it ended
    assert error_details(first.error)[1] == "STREAM_TAKEN_OVER"
    said = (await stub.Say(pb.SayRequest(session=session.name, text="on the new stream"))).utterance
    await wait_done(stub, session.name, said.id)
    assert any(f.utterance_id == said.id for f in third.frames)
    await third.aclose()


async def test_lead_sends_frames_ahead_of_real_time(stub, start_session) -> None:
    """With lead_ms the first frames arrive at once, then the stream keeps that lead: over the same
    wall-clock window it has delivered lead_ms more audio than a stream without lead."""
    counts = {}
    for lead_ms in (0, 400):
        session = await start_session()
        call = stub.StreamAudio()
        await call.write(pb.StreamAudioRequest(config=pb.StreamConfig(session=session.name, lead_ms=lead_ms)))
        frames = 0
        first = None
        async for response in call:
            if response.WhichOneof("message") != "audio":
                continue
            now = asyncio.get_running_loop().time()
            first = first or now
            if now - first > 0.5:
                break
            frames += 1
        call.cancel()
        counts[lead_ms] = frames
    assert counts[400] - counts[0] >= 15  # 400 ms = 20 frames ahead; slack for scheduling


@pytest.mark.parametrize("rate,channels,frame_ms", [(16000, 1, 40), (48000, 2, 60), (8000, 1, 20)])
async def test_stream_output_format(stub, start_session, rate: int, channels: int, frame_ms: int) -> None:
    session = await start_session()
    client = await open_stream(stub, session.name, output=audio_pb2.AudioFormat(
        sample_rate_hz=rate, channels=channels, frame_ms=frame_ms))
    said = (await stub.Say(pb.SayRequest(session=session.name, text="formats"))).utterance
    await wait_done(stub, session.name, said.id)
    mark = len(client.frames)
    await client.wait_for(lambda: len(client.frames) > mark + 3)  # a 40/60 ms frame may still hold the tail
    assert {len(f.pcm) for f in client.frames} == {rate * frame_ms // 1000 * channels}
    audio = np.concatenate([f.pcm for f in client.frames]).reshape(-1, channels)
    loud = np.flatnonzero(np.abs(audio[:, 0]) > 1000)
    speech = audio[loud[0]: loud[-1] + 1]
    assert len(speech) / rate == pytest.approx(7 * 0.06, abs=0.005)  # 7 characters x 60 ms, at any rate
    spectrum = np.abs(np.fft.rfft(speech[:, 0].astype(np.float64)))
    peak_hz = np.argmax(spectrum) * rate / len(speech)
    assert abs(peak_hz - 440) < 10  # the tone stand-in's pitch survives the format change
    if channels == 2:
        assert np.array_equal(speech[:, 0], speech[:, 1])
    assert [f.sequence for f in client.frames] == list(range(len(client.frames)))
    await client.aclose()


@pytest.mark.parametrize("rate,frame_ms", [(48000, 20), (8000, 20), (16000, 60)])
async def test_frames_tagged_with_an_utterance_are_the_frames_holding_its_audio(
        stub, start_session, rate: int, frame_ms: int) -> None:
    """The output resampler holds audio back; a frame's utterance id must follow the audio, not the mix clock."""
    session = await start_session()
    client = await open_stream(stub, session.name, output=audio_pb2.AudioFormat(sample_rate_hz=rate,
                                                                                 frame_ms=frame_ms))
    said = (await stub.Say(pb.SayRequest(session=session.name, text="aligned"))).utterance
    await wait_done(stub, session.name, said.id)
    mark = len(client.frames)
    await client.wait_for(lambda: len(client.frames) > mark + 5)  # what the resampler still held
    loud = [i for i, f in enumerate(client.frames) if np.max(np.abs(f.pcm)) > 1000]
    tagged = [i for i, f in enumerate(client.frames) if f.utterance_id == said.id]
    assert loud and tagged == list(range(tagged[0], tagged[-1] + 1))
    assert tagged[0] == loud[0]  # not ahead of the audio (it was 2-4 frames ahead, by the resampler's hold)
    assert abs(tagged[-1] - loud[-1]) <= 1  # at the end, a few samples of speech or of the filter's ringing
    await client.aclose()


async def test_stereo_48k_input_is_heard(stub, start_session) -> None:
    session = await start_session(auto_reply=False)
    call = stub.StreamAudio()
    await call.write(pb.StreamAudioRequest(config=pb.StreamConfig(
        session=session.name, input_format=audio_pb2.AudioFormat(sample_rate_hz=48000, channels=2))))
    t = np.arange(48000) / 48000
    tone = (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    stereo = np.stack([tone, tone], axis=1).reshape(-1)
    for i in range(0, len(stereo), 1920):
        await call.write(pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(pcm=stereo[i:i + 1920].tobytes())))
    states = []
    async for response in call:
        if response.WhichOneof("message") == "event" and response.event.WhichOneof("event") == "user_state_changed":
            states.append(response.event.user_state_changed.new_state)
            if session_pb2.USER_STATE_SPEAKING in states:
                break
    call.cancel()
    assert session_pb2.USER_STATE_SPEAKING in states


async def test_slow_reader_gets_dropped_frames_reported_not_unbounded_memory(server, start_session) -> None:
    session = await start_session()
    # A small, fixed HTTP/2 window, so a reader that stops reading stalls the server's writes within a second.
    options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16 * 1024)]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=options)
    stub = pb_grpc.AgentSessionServiceStub(channel)
    call = stub.StreamAudio()
    await call.write(pb.StreamAudioRequest(config=pb.StreamConfig(session=session.name)))
    await stub.PlayBackgroundAudio(pb.PlayBackgroundAudioRequest(session=session.name))

    async def dropping() -> int:  # read nothing: Get counts the drops while the reader is stuck
        return (await stub.Get(pb.GetRequest(session=session.name))).session.metrics.frames_dropped

    stuck_drops = await eventually(dropping, what="frames dropped for a stuck reader")
    sequences, dropped = [], []
    async for response in call:
        if response.WhichOneof("message") == "audio":
            sequences.append(response.audio.sequence)
        elif response.event.WhichOneof("event") == "frames_dropped":
            dropped.append(response.event.frames_dropped)
        if len(sequences) > 150:
            break
    call.cancel()
    assert dropped and dropped[0].count > 0
    gaps = sum(b - a - 1 for a, b in zip(sequences, sequences[1:], strict=False))
    assert gaps >= dropped[0].count  # what was dropped shows as sequence gaps
    got = (await stub.Get(pb.GetRequest(session=session.name))).session
    assert got.metrics.frames_dropped >= max(stuck_drops, dropped[0].count)
    await channel.close()


async def test_auto_thinking_sound_plays_while_the_model_thinks() -> None:
    workers = Workers(2)
    registry = SessionRegistry(RegistryLimits(allow_stand_in_providers=True), workers=workers)
    config = SessionConfig(
        providers=replace(STAND_IN_CHOICES, llm=ProviderChoice("echo", {"token_delay_ms": 600})),
        thinking_audio=ThinkingAudioConfig(auto=True),
    )
    heard: list[np.ndarray] = []
    session = await registry.start(config, hooks=SessionHooks(on_agent_audio=lambda f: heard.append(f.copy())))
    reply = session.reply(user_text="hi")
    await eventually(lambda: session.layers.thinking_status().playing and len(heard) > 25, what="thinking audio")
    assert rms(np.concatenate(heard[5:])) > 30  # the thinking sound, before any speech
    done = await reply.done
    assert done.state is UtteranceState.PLAYED
    await eventually(lambda: not session.layers.thinking_status().playing, what="the thinking sound's fade out")
    await registry.shutdown()
    workers.close()


async def test_embedding_hooks_transform_text_and_observe_audio() -> None:
    workers = Workers(2)
    registry = SessionRegistry(RegistryLimits(allow_stand_in_providers=True), workers=workers)
    frames: list[np.ndarray] = []

    async def shout(text: str) -> str:
        return text.upper()

    hooks = SessionHooks(on_agent_text=shout, on_agent_audio=lambda frame: frames.append(frame.copy()))
    config = SessionConfig(providers=STAND_IN_CHOICES)
    session = await registry.start(config, hooks=hooks)
    utterance = session.say("quiet words")
    done = await utterance.done
    assert done.state is UtteranceState.PLAYED and done.heard_text == "QUIET WORDS"
    assert session.chat_history[-1].content == "QUIET WORDS"
    assert frames and rms(np.concatenate(frames)) > 1000
    await registry.shutdown()
    workers.close()
