"""The span tree and metric points a collector receives for a real conversation."""

from __future__ import annotations

import asyncio

import numpy as np
from google.protobuf import struct_pb2

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, open_stream
from tests.engine.test_speech import LONG_TEXT, wait_done, wait_speaking
from tests.telemetry.receiver import Receiver

SERVICE = "parley.v1.AgentSessionService"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = (("traceparent", f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),)


def tone(seconds: float, rate: int = 16000) -> np.ndarray:
    return (8000 * np.sin(2 * np.pi * 300 * np.arange(int(seconds * rate)) / rate)).astype(np.int16)


def weather_config(**extra) -> session_pb2.SessionConfig:
    providers = session_pb2.ProvidersConfig()
    providers.CopyFrom(STAND_IN_PROVIDERS)
    providers.stt.options.update({"transcripts": ["what is the weather in Paris"]})
    providers.llm.options.update({
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
        "after_tools_template": "The weather: {tool_results}",
    })
    params = struct_pb2.Struct()
    params.update({"type": "object", "properties": {"city": {"type": "string"}}})
    return session_pb2.SessionConfig(providers=providers, labels={"tenant": "acme"}, tools=[
        session_pb2.ToolDefinition(name="get_weather", description="Weather by city", parameters=params)], **extra)


async def test_spoken_turn_tool_call_and_interruption_make_one_session_tree(stub, receiver: Receiver) -> None:
    session = (await stub.Start(pb.StartRequest(config=weather_config()))).session
    client = await open_stream(stub, session.name)
    await client.send_silence(0.3)
    await client.send(tone(0.6))  # the caller speaks; the scripted recognizer hears the question
    await client.send_silence(0.8)
    await client.wait_for(lambda: client.of("tool_call_requested"))
    call = client.of("tool_call_requested")[0].call
    await stub.SubmitToolResult(pb.SubmitToolResultRequest(session=session.name, tool_call_id=call.id, result="sunny"))
    answer = [u.utterance for u in client.of("utterance_updated") if u.utterance.source == session_pb2.UTTERANCE_SOURCE_REPLY][0]
    assert (await wait_done(stub, session.name, answer.id)).text == "The weather: sunny"

    said = (await stub.Say(pb.SayRequest(session=session.name, text=LONG_TEXT), metadata=TRACEPARENT)).utterance
    await wait_speaking(client, said.id)
    await client.wait_for(lambda: sum(f.utterance_id == said.id for f in client.frames) >= 15)  # well under way
    await stub.Interrupt(pb.InterruptRequest(session=session.name))
    cut = await wait_done(stub, session.name, said.id)
    assert cut.state == session_pb2.UTTERANCE_STATE_INTERRUPTED
    await client.aclose()
    await stub.Close(pb.CloseRequest(session=session.name))

    # the root: one per session, with its providers, model and labels (OTEL_SERVICE_NAME by flag)
    roots = await receiver.wait_for(lambda: receiver.named("agent_session", **{"session.id": session.name}))
    root = roots[0]
    assert len(roots) == 1 and root.parent_id == "" and root.service == "parley-test"
    assert root.attributes["gen_ai.provider.name"] == "echo" and root.attributes["gen_ai.request.model"] == "echo"
    assert root.attributes["parley.tts.provider"] == "tone" and root.attributes["parley.stt.provider"] == "scripted"
    assert root.attributes["parley.label.tenant"] == "acme"
    assert root.attributes["parley.session.close_reason"] == "closed by client"

    # the user's turn: speech start .. end of turn, with STT and end-of-turn detection inside
    user_turn = receiver.children(root, "user_turn")
    assert len(user_turn) == 1
    stt, = receiver.children(user_turn[0], "stt")
    eot, = receiver.children(user_turn[0], "end_of_turn")
    assert stt.attributes["parley.stt.provider"] == "scripted"
    assert user_turn[0].start_ns < stt.start_ns == eot.start_ns <= eot.end_ns <= user_turn[0].end_ns
    assert user_turn[0].attributes["parley.user.transcript_characters"] == len("what is the weather in Paris")

    # the agent's answer: a turn linked to the user's, two model rounds, the tool call under the first
    turns = {t.attributes["parley.utterance.id"]: t for t in receiver.children(root, "agent_turn")}
    reply = turns[answer.id]
    assert reply.attributes["parley.utterance.source"] == "reply"
    assert reply.attributes["parley.utterance.state"] == "played"
    assert (user_turn[0].trace_id, user_turn[0].span_id) in reply.links
    assert reply.attributes["parley.turn.e2e_latency_ms"] > 0
    rounds = sorted(receiver.children(reply, "chat echo"), key=lambda s: s.start_ns)
    assert len(rounds) == 2
    assert rounds[0].attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert rounds[1].attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert rounds[1].attributes["gen_ai.usage.output_tokens"] == len("The weather: sunny".split())
    assert all(r.attributes["gen_ai.request.model"] == "echo" and "first_token" in r.events for r in rounds)
    assert all(r.attributes["parley.llm.ttft_ms"] >= 0 for r in rounds)
    tool, = receiver.children(rounds[0], "execute_tool get_weather")
    assert tool.attributes["gen_ai.tool.call.id"] == call.id and tool.attributes["gen_ai.tool.name"] == "get_weather"
    tts, = receiver.children(reply, "tts")
    assert tts.attributes["parley.tts.ttfb_ms"] > 0 and tts.attributes["parley.tts.characters"] == len(answer.text or "The weather: sunny")
    speech, = receiver.children(reply, "agent_speech")
    assert speech.attributes["parley.speech.state"] == "played" and not speech.attributes["parley.speech.interrupted"]
    assert speech.attributes["parley.speech.heard_characters"] == len("The weather: sunny")

    # the interrupted Say: heard less than it had, and an interruption span inside its turn
    said_turn = turns[said.id]
    assert said_turn.attributes["parley.utterance.state"] == "interrupted"
    cut_speech, = receiver.children(said_turn, "agent_speech")
    assert cut_speech.attributes["parley.speech.interrupted"]
    assert 0 < cut_speech.attributes["parley.speech.heard_characters"] < len(LONG_TEXT)
    interruption, = receiver.children(said_turn, "interruption")
    assert interruption.attributes["parley.interruption.by_request"] is True

    # call spans: in the session's trace, or under the caller's span with a link to the session
    submit, = receiver.children(root, f"{SERVICE}/SubmitToolResult")
    assert submit.attributes["rpc.method"] == "SubmitToolResult" and submit.attributes["rpc.grpc.status_code"] == 0
    interrupt_call, = receiver.children(root, f"{SERVICE}/Interrupt")
    assert (interrupt_call.trace_id, interrupt_call.span_id) in interruption.links
    say_call = await receiver.wait_for(lambda: receiver.named(f"{SERVICE}/Say"))
    assert say_call[0].trace_id == CLIENT_TRACE and say_call[0].parent_id == CLIENT_SPAN
    assert (root.trace_id, root.span_id) in say_call[0].links
    assert (say_call[0].trace_id, say_call[0].span_id) in said_turn.links
    await receiver.wait_for(lambda: receiver.children(root, f"{SERVICE}/Close"))

    # metric points: the turn's latencies (e2e measured, not summed), interruptions, sessions
    await receiver.wait_for(lambda: receiver.metric_points("parley.interruptions"))
    e2e = receiver.metric_points("parley.turn.e2e_latency")[-1]
    assert e2e.count == 1 and e2e.sum > 0
    for name in ("parley.turn.end_of_turn_delay", "parley.turn.stt_latency", "parley.turn.llm_time_to_first_token",
                 "parley.turn.tts_time_to_first_byte"):
        assert receiver.metric_points(name)[-1].count == 1, name
    assert receiver.metric_points("parley.interruptions")[-1].as_int == 1
    await receiver.wait_for(lambda: receiver.metric_points("parley.session.duration"))
    assert receiver.metric_points("parley.sessions.active")[-1].as_int == 0

    # and Get shows the same turn
    metrics = (await stub.Get(pb.GetRequest(session=session.name))).session.metrics
    assert metrics.turns == 1 and metrics.interruptions == 1
    assert abs(metrics.last_turn.e2e_latency_ms - reply.attributes["parley.turn.e2e_latency_ms"]) < 0.01


async def test_a_client_traceparent_on_start_parents_the_session(stub, receiver: Receiver) -> None:
    config = session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)
    session = (await stub.Start(pb.StartRequest(config=config), metadata=TRACEPARENT)).session
    said = (await stub.Say(pb.SayRequest(session=session.name, text="hello"))).utterance
    await wait_done(stub, session.name, said.id)
    await stub.Close(pb.CloseRequest(session=session.name))
    root, = await receiver.wait_for(lambda: receiver.named("agent_session", **{"session.id": session.name}))
    assert root.trace_id == CLIENT_TRACE and root.parent_id == CLIENT_SPAN
    start_call, = await receiver.wait_for(lambda: receiver.named(f"{SERVICE}/Start"))
    assert start_call.parent_id == CLIENT_SPAN and (root.trace_id, root.span_id) in start_call.links
    say_call, = await receiver.wait_for(lambda: receiver.named(f"{SERVICE}/Say"))
    assert say_call.parent_id == root.span_id  # no traceparent on Say: a child of the session


async def test_two_concurrent_sessions_never_mix_spans(stub, receiver: Receiver) -> None:
    config = session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)
    a, b = [(await stub.Start(pb.StartRequest(config=config))).session.name for _ in range(2)]

    async def talk(name: str, texts: list[str]) -> None:
        for text in texts:
            said = (await stub.Say(pb.SayRequest(session=name, text=text))).utterance
            await wait_done(stub, name, said.id)
        await stub.Close(pb.CloseRequest(session=name))

    await asyncio.gather(talk(a, ["one", "two", "three"]), talk(b, ["four"]))
    root_a, = await receiver.wait_for(lambda: receiver.named("agent_session", **{"session.id": a}))
    root_b, = await receiver.wait_for(lambda: receiver.named("agent_session", **{"session.id": b}))
    assert root_a.trace_id != root_b.trace_id
    await receiver.wait_for(lambda: len(receiver.named(f"{SERVICE}/Close")) == 2)
    for root, says in ((root_a, 3), (root_b, 1)):
        spans = receiver.in_trace(root.trace_id)
        assert {s.attributes.get("session.id") for s in spans if "session.id" in s.attributes} == {root.attributes["session.id"]}
        assert len([s for s in spans if s.name == "agent_turn"]) == says
        assert len([s for s in spans if s.name == f"{SERVICE}/Say"]) == says
        ids = {s.span_id for s in spans}
        assert all(s.parent_id in ids for s in spans if s is not root)  # a whole tree: no parent elsewhere
