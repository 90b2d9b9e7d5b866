"""MCP servers as a tool source: a real MCP server on loopback, a real Parley server, real stubs.

The language model is the OpenAI-compatible provider against a scripted
stand-in endpoint (it decides which tool to call); the tool itself runs on
the SDK's MCP server and its real result travels back to the model.
"""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import struct_pb2

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import open_stream, rms
from tests.engine.test_speech import PLAYED, wait_done
from tests.helpers import error_details
from tests.mcp.conftest import TOKEN, WeatherServer, mcp_tasks, providers_with, serving
from tests.providers.openai_stand_in import Reply, finish_chunk, text_chunk, tool_chunk

MCP, CLIENT = session_pb2.TOOL_SOURCE_MCP, session_pb2.TOOL_SOURCE_CLIENT


def weather_config(url: str, **server) -> session_pb2.McpServerConfig:
    return session_pb2.McpServerConfig(name=server.pop("name", "weather"), url=url, **server)


def tool_call_reply(call_id: str, name: str, arguments: dict) -> Reply:
    return Reply([tool_chunk(0, id=call_id, name=name, arguments=json.dumps(arguments)), finish_chunk("tool_calls")])


def text_reply(text: str) -> Reply:
    return Reply([text_chunk(text), finish_chunk("stop")])


async def test_model_calls_an_mcp_tool_and_speaks_the_real_result(
    stub, weather_server, llm_endpoint
) -> None:
    llm_endpoint.replies += [
        tool_call_reply("call_1", "get_weather", {"city": "Oslo"}),
        text_reply("In Oslo it is snowing, minus four degrees."),
    ]
    params = struct_pb2.Struct()
    params.update({"type": "object", "properties": {"item": {"type": "string"}}})
    config = session_pb2.SessionConfig(
        providers=providers_with(llm_endpoint), mcp_servers=[weather_config(weather_server.url)],
        tools=[session_pb2.ToolDefinition(name="add_to_cart", description="Client side", parameters=params)],
    )
    session = (await stub.Start(pb.StartRequest(config=config))).session
    by_name = {t.name: t for t in session.tools}
    assert set(by_name) == {"add_to_cart", "get_weather", "wait"}
    assert (by_name["add_to_cart"].source, by_name["add_to_cart"].mcp_server) == (CLIENT, "")
    assert (by_name["get_weather"].source, by_name["get_weather"].mcp_server) == (MCP, "weather")
    assert by_name["get_weather"].description == "The current weather in a city."

    client = await open_stream(stub, session.name)
    ask = pb.ReplyRequest(session=session.name, user_text="What's the weather in Oslo?")
    reply = (await stub.Reply(ask)).utterance
    done = await wait_done(stub, session.name, reply.id)
    assert done.state == PLAYED and done.text == "In Oslo it is snowing, minus four degrees."
    assert weather_server.calls == [("get_weather", {"city": "Oslo"})]

    # the model was offered the MCP tools beside the client's, with the server's schemas
    offered = {t["function"]["name"]: t["function"] for t in llm_endpoint.requests[0].body["tools"]}
    assert set(offered) == {"add_to_cart", "get_weather", "wait"}
    assert offered["get_weather"]["parameters"]["properties"]["city"]["type"] == "string"
    # the real result went back to the model
    tool_message = llm_endpoint.requests[1].body["messages"][-1]
    oslo = "The weather in Oslo: snowing, -4 degrees"
    assert tool_message == {"role": "tool", "tool_call_id": "call_1", "content": oslo}

    await client.wait_for(lambda: client.of("tool_call_completed"))
    requested, completed = client.of("tool_call_requested")[0], client.of("tool_call_completed")[0]
    assert (requested.call.name, requested.call.source, requested.timeout_seconds) == ("get_weather", MCP, 10.0)
    assert (completed.result, completed.is_error) == (oslo, False)
    spoken = [f.pcm for f in client.frames if f.utterance_id == reply.id]
    assert spoken and max(rms(p) for p in spoken) > 500

    history = (await stub.Get(pb.GetRequest(session=session.name))).session.chat_history
    assert [m.role for m in history] == [session_pb2.CHAT_ROLE_USER, session_pb2.CHAT_ROLE_ASSISTANT,
                                         session_pb2.CHAT_ROLE_TOOL, session_pb2.CHAT_ROLE_ASSISTANT]
    assert history[1].tool_calls[0].source == MCP
    assert history[2].content == oslo
    assert history[3].content == "In Oslo it is snowing, minus four degrees."
    await client.aclose()

    assert len(mcp_tasks()) == 1
    closed = (await stub.Close(pb.CloseRequest(session=session.name))).session
    assert closed.status == session_pb2.SESSION_STATUS_CLOSED
    assert mcp_tasks() == []  # the connection closed with the session


async def test_slow_mcp_tool_times_out_and_the_session_goes_on(
    stub, weather_server, llm_endpoint
) -> None:
    llm_endpoint.replies += [
        tool_call_reply("call_1", "wait", {"seconds": 30}),
        text_reply("Sorry, that took too long."),
        tool_call_reply("call_2", "get_weather", {"city": "Paris"}),
        text_reply("Paris is sunny."),
    ]
    config = session_pb2.SessionConfig(
        providers=providers_with(llm_endpoint),
        mcp_servers=[weather_config(weather_server.url, call_timeout_seconds=0.3)],
    )
    session = (await stub.Start(pb.StartRequest(config=config))).session
    client = await open_stream(stub, session.name)
    first = (await stub.Reply(pb.ReplyRequest(session=session.name, user_text="wait for me"))).utterance
    assert (await wait_done(stub, session.name, first.id)).state == PLAYED
    timed_out = llm_endpoint.requests[1].body["messages"][-1]
    assert timed_out["role"] == "tool" and "did not answer within 0.3 s" in timed_out["content"]
    await client.wait_for(lambda: client.of("tool_call_completed"))
    completed = client.of("tool_call_completed")[0]
    assert completed.is_error and "did not answer within 0.3 s" in completed.result
    assert client.of("tool_call_requested")[0].timeout_seconds == pytest.approx(0.3)

    # the same connection still serves the next call
    second = (await stub.Reply(pb.ReplyRequest(session=session.name, user_text="and Paris?"))).utterance
    assert (await wait_done(stub, session.name, second.id)).text == "Paris is sunny."
    assert llm_endpoint.requests[3].body["messages"][-1]["content"] == "The weather in Paris: sunny, 21 degrees"
    await client.aclose()
    await stub.Close(pb.CloseRequest(session=session.name))


async def test_mcp_server_down_fails_start_naming_its_url(stub, down_url) -> None:
    config = session_pb2.SessionConfig(providers=providers_with(), mcp_servers=[weather_config(down_url)])
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.Start(pb.StartRequest(config=config))
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert down_url in failed.value.details() and "'weather'" in failed.value.details()
    assert error_details(failed.value)[1] == "MCP_SERVER_UNAVAILABLE"
    assert (await stub.List(pb.ListRequest())).sessions == []  # nothing half-started is left
    assert mcp_tasks() == []
    other = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(providers=providers_with())))).session
    assert other.status == session_pb2.SESSION_STATUS_ACTIVE  # the server goes on


async def test_optional_mcp_server_down_is_a_warning_and_the_session_goes_on(
    stub, weather_server, down_url
) -> None:
    config = session_pb2.SessionConfig(providers=providers_with(), mcp_servers=[
        weather_config(down_url, name="crm", optional=True), weather_config(weather_server.url)])
    session = (await stub.Start(pb.StartRequest(config=config))).session
    assert {(t.name, t.mcp_server) for t in session.tools} == {("get_weather", "weather"), ("wait", "weather")}

    watch = stub.WatchEvents(pb.WatchEventsRequest(session=session.name))
    first = (await anext(aiter(watch))).event
    assert first.WhichOneof("event") == "warning"
    assert first.warning.reason == "MCP_SERVER_UNAVAILABLE" and down_url in first.warning.message
    client = await open_stream(stub, session.name)  # a stream gets it too
    await client.wait_for(lambda: client.of("warning"))
    said = (await stub.Say(pb.SayRequest(session=session.name, text="I can still talk"))).utterance
    assert (await wait_done(stub, session.name, said.id)).state == PLAYED
    watch.cancel()
    await client.aclose()
    await stub.Close(pb.CloseRequest(session=session.name))
    assert mcp_tasks() == []


async def test_tool_name_clash_with_a_client_tool_names_both(
    stub, weather_server
) -> None:
    config = session_pb2.SessionConfig(
        providers=providers_with(), tools=[session_pb2.ToolDefinition(name="get_weather")],
        mcp_servers=[weather_config(weather_server.url)],
    )
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.Start(pb.StartRequest(config=config))
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (field, description), = error_details(failed.value)[0]
    assert field == "config.mcp_servers[0]"
    assert "'get_weather'" in description and "MCP server 'weather'" in description
    assert "client tool" in description and "config.tools[0]" in description
    assert mcp_tasks() == []  # the connection made before the clash was found is closed


async def test_tool_name_clash_between_two_mcp_servers_names_both(
    stub, weather_server
) -> None:
    config = session_pb2.SessionConfig(providers=providers_with(), mcp_servers=[
        weather_config(weather_server.url, name="primary"), weather_config(weather_server.url, name="mirror")])
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.Start(pb.StartRequest(config=config))
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (field, description), = error_details(failed.value)[0]
    assert field == "config.mcp_servers[1]"
    assert "MCP server 'mirror'" in description and "MCP server 'primary'" in description
    assert "config.mcp_servers[0]" in description
    assert mcp_tasks() == []


async def test_stdio_mcp_server_is_refused_unless_the_operator_allows_it(stub) -> None:
    server = session_pb2.McpServerConfig(name="local", stdio=session_pb2.McpStdioCommand(command="true"))
    config = session_pb2.SessionConfig(providers=providers_with(), mcp_servers=[server])
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.Start(pb.StartRequest(config=config))
    assert failed.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "--allow-mcp-stdio" in failed.value.details()
    assert error_details(failed.value)[1] == "MCP_STDIO_DISABLED"


async def test_headers_reach_the_mcp_server_and_are_not_shown_back(
    stub, guarded_weather_server
) -> None:
    url = guarded_weather_server.url
    bare = session_pb2.SessionConfig(providers=providers_with(), mcp_servers=[weather_config(url)])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Start(pb.StartRequest(config=bare))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION and url in refused.value.details()

    signed = session_pb2.SessionConfig(providers=providers_with(), mcp_servers=[
        weather_config(url, headers={"authorization": TOKEN})])
    session = (await stub.Start(pb.StartRequest(config=signed))).session
    assert {t.name for t in session.tools} == {"get_weather", "wait"}
    shown = (await stub.Get(pb.GetRequest(session=session.name))).session.config.mcp_servers[0]
    assert dict(shown.headers) == {"authorization": "<redacted>"}
    await stub.Close(pb.CloseRequest(session=session.name))


async def test_mcp_server_lost_mid_session_is_a_warning_and_the_session_goes_on(
    stub, llm_endpoint
) -> None:
    llm_endpoint.replies += [
        tool_call_reply("call_1", "get_weather", {"city": "Oslo"}),
        text_reply("I could not reach the weather service."),
    ]
    async with serving(WeatherServer("")) as server:
        config = session_pb2.SessionConfig(providers=providers_with(llm_endpoint),
                                           mcp_servers=[weather_config(server.url)])
        session = (await stub.Start(pb.StartRequest(config=config))).session
        client = await open_stream(stub, session.name)
    # the MCP server is gone now
    reply = (await stub.Reply(pb.ReplyRequest(session=session.name, user_text="weather in Oslo?"))).utterance
    done = await wait_done(stub, session.name, reply.id)
    assert done.state == PLAYED and done.text == "I could not reach the weather service."
    await client.wait_for(lambda: any(w.reason == "MCP_SERVER_LOST" for w in client.of("warning")))
    lost = [w for w in client.of("warning") if w.reason == "MCP_SERVER_LOST"]
    assert len(lost) == 1 and "'weather'" in lost[0].message
    completed = client.of("tool_call_completed")[0]
    assert completed.is_error
    await client.aclose()
    await stub.Close(pb.CloseRequest(session=session.name))
