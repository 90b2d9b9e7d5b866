"""A stdio MCP server, allowed by the operator: started with the session, ended with it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.test_speech import PLAYED, wait_done
from tests.mcp.conftest import mcp_tasks, providers_with
from tests.mcp.test_mcp_tools import text_reply, tool_call_reply

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server_settings(server_settings: ServerSettings) -> ServerSettings:
    return server_settings.replace(allow_mcp_stdio=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_stdio_mcp_server_runs_for_the_session_and_ends_with_it(
    stub, llm_endpoint, tmp_path
) -> None:
    llm_endpoint.replies += [tool_call_reply("call_1", "get_weather", {"city": "Paris"}), text_reply("Sunny in Paris.")]
    pid_file = tmp_path / "pid"
    command = session_pb2.McpStdioCommand(
        command=sys.executable, args=[str(ROOT / "tests" / "mcp" / "stdio_server.py")],
        env={"PYTHONPATH": str(ROOT), "PID_FILE": str(pid_file)},
    )
    config = session_pb2.SessionConfig(providers=providers_with(llm_endpoint),
                                       mcp_servers=[session_pb2.McpServerConfig(name="local", stdio=command)])
    session = (await stub.Start(pb.StartRequest(config=config))).session
    assert {(t.name, t.source, t.mcp_server) for t in session.tools} == {
        ("get_weather", session_pb2.TOOL_SOURCE_MCP, "local"), ("wait", session_pb2.TOOL_SOURCE_MCP, "local")}
    assert session.config.mcp_servers[0].stdio.command == sys.executable  # env is not echoed back
    assert not session.config.mcp_servers[0].stdio.env
    pid = int(pid_file.read_text())
    assert alive(pid)

    reply = (await stub.Reply(pb.ReplyRequest(session=session.name, user_text="Weather in Paris?"))).utterance
    assert (await wait_done(stub, session.name, reply.id)).state == PLAYED
    assert llm_endpoint.requests[1].body["messages"][-1]["content"] == "The weather in Paris: sunny, 21 degrees"

    await stub.Close(pb.CloseRequest(session=session.name))
    assert not alive(pid)  # the process ended with the session
    assert mcp_tasks() == []
