"""The `openai` provider against a real OpenAI-compatible server (llama.cpp's), through a Parley session.

The shipped Gemma 3 270M is a base model, so what it says is not checked,
only that it arrives: a Reply streams and plays, client tool calls reach the
client with the right name and go back to the model, and a server that dies
mid-reply fails the utterance as soon as the stream breaks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import struct_pb2

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, open_stream, rms
from tests.providers.llama_server import MODEL, LlamaServer

PLAYED, FAILED = session_pb2.UTTERANCE_STATE_PLAYED, session_pb2.UTTERANCE_STATE_FAILED
WEATHER = session_pb2.ToolDefinition(
    name="get_weather", description="The weather in a city",
    parameters=struct_pb2.Struct(fields={}))
WEATHER.parameters.update({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = LlamaServer(tmp_path_factory.mktemp("llama") / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def llm(server: LlamaServer, **options: object) -> session_pb2.ProviderSpec:
    base = {"base_url": server.base_url, "model": MODEL, "max_tokens": 24, "temperature": 0.0, "timeout_s": 60.0}
    return session_pb2.ProviderSpec(name="openai", options=base | options)


async def test_a_reply_streams_and_plays(stub, llama: LlamaServer) -> None:
    config = session_pb2.SessionConfig(instructions="You are a helpful assistant.",
                                       providers=session_pb2.ProvidersConfig(llm=llm(llama)))
    session = (await stub.Start(pb.StartRequest(config=config))).session.name
    stream = await open_stream(stub, session)
    try:
        reply = (await stub.Reply(pb.ReplyRequest(session=session, user_text="What is the capital of France?"))).utterance
        done = (await stub.WaitUtterance(pb.WaitUtteranceRequest(session=session, utterance_id=reply.id))).utterance
        assert done.state == PLAYED, done
        assert done.text.strip() and done.heard_text == done.text
        assert stream.of("agent_text")  # the text came as the model streamed it
        spoken = [f.pcm for f in stream.frames if f.utterance_id == reply.id]
        assert spoken and max(rms(pcm) for pcm in spoken) > 300  # speech, not silence
    finally:
        await stream.aclose()


async def test_client_tool_calls_reach_the_client_and_return_to_the_model(stub, llama: LlamaServer) -> None:
    config = session_pb2.SessionConfig(
        instructions="You answer questions about the weather.", tools=[WEATHER],
        providers=session_pb2.ProvidersConfig(tts=STAND_IN_PROVIDERS.tts, llm=llm(llama, tool_choice="get_weather")))
    session = (await stub.Start(pb.StartRequest(config=config))).session.name
    watch = stub.WatchEvents(pb.WatchEventsRequest(session=session))
    reply = (await stub.Reply(pb.ReplyRequest(session=session, user_text="What is the weather in Oslo?"))).utterance
    async for response in watch:
        if response.event.WhichOneof("event") == "tool_call_requested":
            call = response.event.tool_call_requested.call
            break
    assert call.name == "get_weather"  # named once, not once per streamed chunk
    assert isinstance(json.loads(call.arguments_json), dict)
    await stub.SubmitToolResult(pb.SubmitToolResultRequest(session=session, tool_call_id=call.id,
                                                           result='{"sky": "clear", "celsius": 21}'))
    done = (await stub.WaitUtterance(pb.WaitUtteranceRequest(session=session, utterance_id=reply.id))).utterance
    watch.cancel()
    assert done.state == PLAYED and done.text.strip(), done  # the server took the follow-up (content "", no null)
    history = (await stub.Get(pb.GetRequest(session=session))).session.chat_history
    tool_turns = [m for m in history if m.tool_calls or m.tool_call_id]
    assert [m.tool_calls[0].name for m in tool_turns if m.tool_calls] == ["get_weather"]
    assert [m.tool_call_id for m in tool_turns if m.tool_call_id] == [call.id]


async def test_a_server_dying_mid_reply_fails_the_utterance_at_once(stub, tmp_path: Path) -> None:
    server = LlamaServer(tmp_path / "server.log")
    server.start()
    try:
        # neither the read timeout nor the stall watchdog may be what notices: both are far off
        config = session_pb2.SessionConfig(instructions="You are a storyteller.", providers=session_pb2.ProvidersConfig(
            tts=STAND_IN_PROVIDERS.tts, llm=llm(server, max_tokens=400, timeout_s=600.0)))
        session = (await stub.Start(pb.StartRequest(config=config))).session.name
        stream = await open_stream(stub, session)
        request = pb.ReplyRequest(session=session, user_text="Write a long essay about the history of Paris.")
        reply = (await stub.Reply(request)).utterance
        await stream.wait_for(lambda: stream.of("agent_text"), timeout=120)  # speech has started
        server.kill()
        warned = lambda: [w for w in stream.of("warning") if w.reason == "LLM_FAILED"]  # noqa: E731
        await stream.wait_for(warned, timeout=20)  # far less than the 30 s watchdog
        assert "broke" in warned()[0].message
        await stream.wait_for(lambda: FAILED in stream.utterance_states(reply.id) or PLAYED in
                              stream.utterance_states(reply.id), timeout=20)
        await stream.aclose()
    finally:
        server.stop()
