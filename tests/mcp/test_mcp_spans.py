"""MCP tool calls in the session's trace, as an OTLP collector receives them."""

from __future__ import annotations

import pytest

from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.test_speech import PLAYED, wait_done
from tests.mcp.conftest import providers_with
from tests.mcp.test_mcp_tools import text_reply, tool_call_reply
from tests.telemetry.receiver import Receiver

STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


@pytest.fixture
def server_settings(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> ServerSettings:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    return ServerSettings(host="127.0.0.1", port=0, reap_interval=0.05, shutdown_grace=1.0, log_level="WARNING",
                          allow_stand_in_providers=True,
                          otel_endpoint=receiver.endpoint, otel_protocol="grpc", otel_service_name="parley-test")


async def test_mcp_tool_calls_are_spans_under_the_model_round(
    stub, receiver, weather_server, llm_endpoint
) -> None:
    llm_endpoint.replies += [
        tool_call_reply("call_1", "get_weather", {"city": "Paris"}), text_reply("Sunny in Paris."),
        tool_call_reply("call_2", "wait", {"seconds": 30}), text_reply("That took too long."),
    ]
    server = session_pb2.McpServerConfig(name="weather", url=weather_server.url, call_timeout_seconds=0.3)
    config = session_pb2.SessionConfig(providers=providers_with(llm_endpoint), mcp_servers=[server])
    session = (await stub.Start(pb.StartRequest(config=config))).session
    for question in ("Weather in Paris?", "Wait for me."):
        reply = (await stub.Reply(pb.ReplyRequest(session=session.name, user_text=question))).utterance
        assert (await wait_done(stub, session.name, reply.id)).state == PLAYED
    await stub.Close(pb.CloseRequest(session=session.name))

    weather, = await receiver.wait_for(lambda: receiver.named("execute_tool get_weather"))
    assert weather.attributes["parley.tool.source"] == "mcp"
    assert weather.attributes["gen_ai.tool.call.id"] == "call_1" and weather.status_code != STATUS_ERROR
    chat_round = next(s for s in receiver.spans if s.span_id == weather.parent_id)
    assert chat_round.name.startswith("chat ")
    assert chat_round.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    root, = await receiver.wait_for(lambda: receiver.named("agent_session", **{"session.id": session.name}))
    assert weather.trace_id == root.trace_id

    slow, = await receiver.wait_for(lambda: receiver.named("execute_tool wait"))
    assert slow.attributes["parley.tool.source"] == "mcp"
    assert slow.status_code == STATUS_ERROR and slow.attributes["error.type"] == "tool_error"
    assert slow.end_ns - slow.start_ns >= 300_000_000  # it lasted its timeout
