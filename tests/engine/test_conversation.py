"""Wake-up, false interruptions, layers and tool calls over a real server."""

from __future__ import annotations

import json

import numpy as np
from google.protobuf import struct_pb2

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, open_stream, rms
from tests.engine.test_speech import LONG_TEXT, PLAYED, wait_done, wait_speaking
from tests.helpers import eventually


def tone(seconds: float, rate: int = 16000, freq: float = 300.0) -> np.ndarray:
    return (8000 * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.int16)


async def test_wake_up_fires_once_after_idle_and_not_during_speech(stub, start_session) -> None:
    session = await start_session(wake_up=session_pb2.WakeUpConfig(
        after_seconds=0.6, action=session_pb2.AgentAction(say_text="are you there")))
    client = await open_stream(stub, session.name)
    said = (await stub.Say(pb.SayRequest(session=session.name, text="a greeting that lasts a while"))).utterance
    await wait_done(stub, session.name, said.id)  # ~1.7 s of speech: longer than the wake-up delay
    assert client.of("wake_up") == []
    await client.wait_for(lambda: client.of("wake_up"), timeout=3)

    def woke() -> list[session_pb2.Utterance]:
        return [u.utterance for u in client.of("utterance_updated")
                if u.utterance.source == session_pb2.UTTERANCE_SOURCE_WAKE_UP]

    await client.wait_for(lambda: bool(woke()))
    assert woke()[0].text == "are you there"
    done = await wait_done(stub, session.name, woke()[0].id)
    assert done.state == PLAYED  # the timer never cancels the speech it started
    assert len(client.of("wake_up")) == 1  # and it did not fire again while that speech played
    await client.aclose()


async def test_wake_up_is_reset_by_caller_speech(stub, start_session) -> None:
    session = await start_session(
        wake_up=session_pb2.WakeUpConfig(after_seconds=0.8, action=session_pb2.AgentAction(say_text="hello?")),
        auto_reply=False, providers=STAND_IN_PROVIDERS)
    client = await open_stream(stub, session.name)
    for _ in range(3):  # speech every 0.6 s keeps the timer from firing
        await client.send_silence(0.4)
        await client.send(tone(0.2))
    await client.send_silence(0.5)  # the VAD hears the caller stop (its hangover is 0.3 s)
    assert client.of("wake_up") == []
    await client.wait_for(lambda: client.of("wake_up"), timeout=3)
    await client.aclose()


async def test_false_interruption_pauses_then_resumes(stub) -> None:
    providers = session_pb2.ProvidersConfig()
    providers.CopyFrom(STAND_IN_PROVIDERS)
    providers.stt.options.update({"transcripts": [""]})  # noise: no words
    config = session_pb2.SessionConfig(providers=providers, interruption=session_pb2.InterruptionConfig(
        min_duration_seconds=1.0, false_interruption_pause_seconds=0.4))
    session = (await stub.Start(pb.StartRequest(config=config))).session
    client = await open_stream(stub, session.name)
    said = (await stub.Say(pb.SayRequest(session=session.name, text=LONG_TEXT))).utterance
    await wait_speaking(client, said.id)
    await client.send(tone(0.15))  # a cough
    await client.wait_for(lambda: [i.kind for i in client.of("interruption")] == [2])  # PAUSED
    paused_at = len(client.frames)
    await client.send_silence(0.35)
    quiet = [rms(f.pcm) for f in client.frames[paused_at + 6: paused_at + 12]]
    assert max(quiet) < 50, quiet  # speech held while paused
    await client.send_silence(0.6)  # the caller stays silent through the pause window
    await client.wait_for(lambda: [i.kind for i in client.of("interruption")] == [2, 3])  # RESUMED
    done = await wait_done(stub, session.name, said.id)
    assert done.state == PLAYED and done.heard_text == LONG_TEXT
    metrics = (await stub.Get(pb.GetRequest(session=session.name))).session.metrics
    assert metrics.false_interruptions == 1 and metrics.interruptions == 0
    await client.aclose()


async def test_background_and_thinking_layers_are_audible_and_fade_out(stub, start_session) -> None:
    session = await start_session(background_audio=session_pb2.BackgroundAudioConfig(duck_db=12))
    client = await open_stream(stub, session.name)
    await client.wait_for(lambda: len(client.frames) >= 10)
    assert max(rms(f.pcm) for f in client.frames) < 1  # silence before any layer
    status = (await stub.PlayBackgroundAudio(pb.PlayBackgroundAudioRequest(session=session.name))).background_audio
    assert status.playing and status.source == "builtin:ambience"
    mark = len(client.frames)
    await client.wait_for(lambda: len(client.frames) >= mark + 25)
    background = np.mean([rms(f.pcm) for f in client.frames[mark + 10: mark + 25]])
    assert background > 50

    said = (await stub.Say(pb.SayRequest(session=session.name, text="speech over ambience"))).utterance
    await wait_done(stub, session.name, said.id)
    under = [f for f in client.frames if f.utterance_id == said.id]
    assert rms(np.concatenate([f.pcm for f in under])) > background  # speech on top

    thinking = (await stub.StartThinkingAudio(pb.StartThinkingAudioRequest(session=session.name))).thinking_audio
    assert not thinking.playing  # no thinking over a playing background unless asked to layer
    thinking = (await stub.StartThinkingAudio(
        pb.StartThinkingAudioRequest(session=session.name, layer_over_background=True))).thinking_audio
    assert thinking.playing

    await stub.StopThinkingAudio(pb.StopThinkingAudioRequest(session=session.name, fade_ms=100))
    stop = (await stub.StopBackgroundAudio(pb.StopBackgroundAudioRequest(session=session.name, fade_ms=200)))
    mark = len(client.frames)
    await client.wait_for(lambda: len(client.frames) >= mark + 30)
    tail = [rms(f.pcm) for f in client.frames[mark: mark + 30]]
    assert tail[-1] < 1 and max(tail[-10:]) < 1  # faded to silence
    steps = np.abs(np.diff(np.concatenate([f.pcm for f in client.frames[mark: mark + 20]]).astype(np.int32)))
    assert steps.max() < 8000  # a fade, not a cut
    got = (await stub.Get(pb.GetRequest(session=session.name))).session
    assert not got.background_audio.playing and not got.thinking_audio.playing
    assert not stop.background_audio.playing
    await client.aclose()


async def test_background_override_stops_thinking_and_resumes_it(stub, start_session) -> None:
    session = await start_session()
    name = session.name
    assert (await stub.StartThinkingAudio(pb.StartThinkingAudioRequest(session=name))).thinking_audio.playing
    await stub.PlayBackgroundAudio(pb.PlayBackgroundAudioRequest(session=name, override_thinking=True))

    async def thinking_faded() -> bool:
        return not (await stub.Get(pb.GetRequest(session=name))).session.thinking_audio.playing

    await eventually(thinking_faded, what="the thinking sound's fade out")
    await stub.StopBackgroundAudio(pb.StopBackgroundAudioRequest(session=name))
    assert (await stub.Get(pb.GetRequest(session=name))).session.thinking_audio.playing


async def test_client_tool_call_round_trip(stub) -> None:
    providers = session_pb2.ProvidersConfig()
    providers.CopyFrom(STAND_IN_PROVIDERS)
    providers.llm.options.update({
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
        "after_tools_template": "The weather: {tool_results}",
    })
    params = struct_pb2.Struct()
    params.update({"type": "object", "properties": {"city": {"type": "string"}}})
    config = session_pb2.SessionConfig(providers=providers, tools=[
        session_pb2.ToolDefinition(name="get_weather", description="Weather by city", parameters=params)])
    session = (await stub.Start(pb.StartRequest(config=config))).session
    client = await open_stream(stub, session.name)
    reply = (await stub.Reply(pb.ReplyRequest(session=session.name, user_text="weather in Paris?"))).utterance
    await client.wait_for(lambda: client.of("tool_call_requested"))
    call = client.of("tool_call_requested")[0].call
    assert call.name == "get_weather" and json.loads(call.arguments_json) == {"city": "Paris"}
    assert call.source == session_pb2.TOOL_SOURCE_CLIENT
    states = [s.new_state for s in client.of("agent_state_changed")]
    assert states[-1] == session_pb2.AGENT_STATE_THINKING
    await stub.SubmitToolResult(pb.SubmitToolResultRequest(session=session.name, tool_call_id=call.id, result="sunny"))
    done = await wait_done(stub, session.name, reply.id)
    assert done.state == PLAYED and done.text == "The weather: sunny"
    completed = client.of("tool_call_completed")[0]
    assert completed.result == "sunny" and not completed.is_error
    history = (await stub.Get(pb.GetRequest(session=session.name))).session.chat_history
    roles = [m.role for m in history]
    assert roles == [session_pb2.CHAT_ROLE_USER, session_pb2.CHAT_ROLE_ASSISTANT, session_pb2.CHAT_ROLE_TOOL,
                     session_pb2.CHAT_ROLE_ASSISTANT]
    assert history[1].tool_calls[0].id == call.id and history[2].tool_call_id == call.id
    assert history[3].content == "The weather: sunny"
    await client.aclose()


async def test_tool_timeout_gives_the_model_an_error(stub) -> None:
    providers = session_pb2.ProvidersConfig()
    providers.CopyFrom(STAND_IN_PROVIDERS)
    providers.llm.options.update({"tool_calls": [{"name": "slow", "arguments": {}}],
                                  "after_tools_template": "Sorry: {tool_results}"})
    config = session_pb2.SessionConfig(providers=providers, tool_timeout_seconds=0.3,
                                       tools=[session_pb2.ToolDefinition(name="slow")])
    session = (await stub.Start(pb.StartRequest(config=config))).session
    reply = (await stub.Reply(pb.ReplyRequest(session=session.name, user_text="go"))).utterance
    done = await wait_done(stub, session.name, reply.id)
    assert done.state == PLAYED and "did not answer" in done.text
    tool_message = (await stub.Get(pb.GetRequest(session=session.name))).session.chat_history[2]
    assert tool_message.role == session_pb2.CHAT_ROLE_TOOL and "did not answer" in tool_message.content


async def test_a_call_of_an_unknown_tool_is_answered_to_the_model_not_sent_to_the_client(stub) -> None:
    providers = session_pb2.ProvidersConfig()
    providers.CopyFrom(STAND_IN_PROVIDERS)
    providers.llm.options.update({"tool_calls": [{"name": "get_weathr", "arguments": {}}],
                                  "after_tools_template": "Sorry: {tool_results}"})
    config = session_pb2.SessionConfig(providers=providers, tools=[session_pb2.ToolDefinition(name="get_weather")])
    session = (await stub.Start(pb.StartRequest(config=config))).session
    client = await open_stream(stub, session.name)
    reply = (await stub.Reply(pb.ReplyRequest(session=session.name, user_text="weather?"))).utterance
    done = await wait_done(stub, session.name, reply.id)
    assert done.state == PLAYED and "no tool named 'get_weathr'" in done.text and "get_weather" in done.text
    await client.wait_for(lambda: PLAYED in client.utterance_states(reply.id))  # the stream saw it all
    assert not client.of("tool_call_requested")  # the client never heard of it
    tool_message = (await stub.Get(pb.GetRequest(session=session.name))).session.chat_history[2]
    assert tool_message.role == session_pb2.CHAT_ROLE_TOOL and "no tool named" in tool_message.content
    await client.aclose()
