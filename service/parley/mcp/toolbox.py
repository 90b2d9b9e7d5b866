"""A session's MCP servers: connect at start, offer their tools, run calls, close.

Rules (the contract's): a stdio server needs the operator's opt-in; a server
that cannot be reached fails the start with FAILED_PRECONDITION naming its
URL, unless it is `optional`, in which case the session goes on without it
and the caller is told by a warning; a tool name offered by two sources (the
client's tools or another server) is INVALID_ARGUMENT naming both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from parley.chat import TOOL_NAME, ToolCall, ToolSource, ToolSpec
from parley.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from parley.mcp.connection import McpConnection, McpResult, McpServerConfig, McpUnavailable, describe_target

CONNECT_TIMEOUT_SECONDS = 10.0

Warn = Callable[[str, str], None]  # (reason, message)


@dataclass(frozen=True)
class _Origin:
    """Where a tool name came from, for clash messages."""

    label: str
    path: str


class McpToolbox:
    """The MCP connections of one session."""

    def __init__(self, servers: Sequence[McpServerConfig], *, allow_stdio: bool,
                 connect_timeout: float = CONNECT_TIMEOUT_SECONDS, on_lost: Warn | None = None) -> None:
        """`on_lost(reason, message)` tells of a server that failed after Start (its tools then answer errors)."""
        self._servers = tuple(servers)
        self._on_lost = on_lost
        self._allow_stdio = allow_stdio
        self._connect_timeout = connect_timeout
        self._connections: dict[str, McpConnection] = {}
        self._tool_server: dict[str, McpConnection] = {}

    async def open(self, client_tools: Sequence[ToolSpec], warn: Warn) -> list[ToolSpec]:
        """Connect every server at once and return their tools as specs.

        On any error the connections already made are closed before it is raised.
        """
        for n, server in enumerate(self._servers):
            if server.stdio is not None and not self._allow_stdio:
                raise PermissionDenied(
                    f"config.mcp_servers[{n}] ({server.name!r}) is a stdio command; this server runs commands only "
                    "when started with --allow-mcp-stdio", reason="MCP_STDIO_DISABLED",
                )
        connections = [McpConnection(server, self._lost_callback(server)) for server in self._servers]
        outcomes = await asyncio.gather(*(c.open(self._connect_timeout) for c in connections), return_exceptions=True)
        try:
            return self._adopt(connections, outcomes, client_tools, warn)
        except BaseException:
            await asyncio.gather(*(c.aclose() for c in connections))
            self._connections.clear()
            self._tool_server.clear()
            raise

    def _adopt(self, connections: list[McpConnection], outcomes: Sequence[object], client_tools: Sequence[ToolSpec],
               warn: Warn) -> list[ToolSpec]:
        for connection, outcome in zip(connections, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, McpUnavailable):
                raise outcome
            server = connection.config
            if isinstance(outcome, McpUnavailable):
                message = f"MCP server {server.name!r} at {describe_target(server)} is unavailable: {outcome}"
                if not server.optional:
                    raise FailedPrecondition(message, reason="MCP_SERVER_UNAVAILABLE")
                warn("MCP_SERVER_UNAVAILABLE", message + "; the session goes on without its tools")
        origins = {t.name: _Origin("a client tool", f"config.tools[{i}]") for i, t in enumerate(client_tools)}
        specs: list[ToolSpec] = []
        for n, connection in enumerate(connections):
            if isinstance(outcomes[n], BaseException):
                continue
            server = connection.config
            self._connections[server.name] = connection
            for tool in connection.tools:
                if not TOOL_NAME.match(tool.name):
                    warn("MCP_TOOL_SKIPPED", f"MCP server {server.name!r} offers a tool named {tool.name[:80]!r}, "
                                             "not 1-64 letters, digits, '_' or '-', so it is not offered")
                    continue
                here = _Origin(f"MCP server {server.name!r}", f"config.mcp_servers[{n}]")
                first = origins.get(tool.name)
                if first is not None:
                    raise InvalidArgument(
                        here.path, f"tool {tool.name!r} of {here.label} clashes with {first.label} of the same name "
                                   f"({first.path})", reason="TOOL_NAME_CLASH",
                    )
                origins[tool.name] = here
                self._tool_server[tool.name] = connection
                specs.append(ToolSpec(tool.name, tool.description, tool.input_schema, ToolSource.MCP, server.name))
        return specs

    def _lost_callback(self, server: McpServerConfig) -> Callable[[str], None] | None:
        report = self._on_lost
        if report is None:
            return None

        def lost(reason: str) -> None:
            report("MCP_SERVER_LOST", f"MCP server {server.name!r} at {describe_target(server)} failed: {reason}; "
                                      "its tools answer errors until the session ends")

        return lost

    def call_timeout(self, tool_name: str) -> float:
        return self._tool_server[tool_name].config.call_timeout_seconds

    async def call(self, call: ToolCall) -> McpResult:
        """Run a call to one of the MCP tools, bounded by its server's call timeout."""
        connection = self._tool_server[call.name]
        return await connection.call(call.name, call.arguments_json, connection.config.call_timeout_seconds)

    async def aclose(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        self._tool_server.clear()
        await asyncio.gather(*(c.aclose() for c in connections))
