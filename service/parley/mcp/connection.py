"""One MCP server connection of one session, through the official `mcp` SDK.

The SDK's client lives in anyio task groups that must be entered and left by
the same task, while a session starts in one call and closes in another. So
each connection runs in a task of its own that opens the client, lists the
tools, then holds the connection until `aclose()`; tool calls from other
tasks go through the open client.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2
import mcp_types
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from parley.cancelling import cancel_and_wait

log = logging.getLogger("parley.mcp")

MAX_RESULT_CHARS = 16_000  # a tool result enters the chat context: keep it bounded
MAX_LISTED_TOOLS = 256  # tools read from one server before giving up on its listing
CLOSE_TIMEOUT_SECONDS = 5.0
# The SDK's own HTTP timeouts: the server may hold a response stream open for long.
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


class McpStdioSpec(Protocol):
    @property
    def command(self) -> str: ...
    @property
    def args(self) -> Sequence[str]: ...
    @property
    def env(self) -> Mapping[str, str]: ...


class McpServerConfig(Protocol):
    """What a connection needs to know of a server (the session config's MCP entries have it)."""

    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def stdio(self) -> McpStdioSpec | None: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def optional(self) -> bool: ...
    @property
    def call_timeout_seconds(self) -> float: ...


class McpUnavailable(Exception):
    """The server could not be reached, or its tools could not be listed."""


@dataclass(frozen=True)
class McpTool:
    """A tool as the server lists it."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class McpResult:
    text: str
    is_error: bool


def describe_target(config: McpServerConfig) -> str:
    """Where the server is, for messages: its URL or its command line (never headers or env)."""
    if config.stdio is not None:
        return " ".join((config.stdio.command, *config.stdio.args))
    return config.url


class McpConnection:
    """A connected MCP server: its tools, calls with a timeout, and a close.

    `on_lost(reason)` is called once, the first time the connection fails after
    it was up (its transport ends, or a call fails below the tool level).
    """

    def __init__(self, config: McpServerConfig, on_lost: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._on_lost = on_lost
        self._lost = False
        self.tools: list[McpTool] = []
        self._client: Client | None = None
        self._ready: asyncio.Future[None] | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self, timeout: float) -> list[McpTool]:
        """Connect and list the tools; McpUnavailable if that fails or takes longer than `timeout`."""
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold(), name=f"mcp:{self.config.name}")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            await self.aclose()
            raise McpUnavailable(f"no answer within {timeout:g} s") from None
        except McpUnavailable:
            await self.aclose()
            raise
        return self.tools

    async def _hold(self) -> None:
        assert self._ready is not None
        try:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(self._new_client(stack))
                self.tools = await _list_tools(client)
                self._client = client
                self._ready.set_result(None)
                await self._stop.wait()
        except Exception as exc:  # noqa: BLE001 - any failure of the server or transport
            if not self._ready.done():
                self._ready.set_exception(McpUnavailable(_reason(exc)))
            else:
                self._report_lost(_reason(exc))
        finally:
            self._client = None
            if not self._ready.done():
                self._ready.set_exception(McpUnavailable("connection closed"))

    def _new_client(self, stack: AsyncExitStack) -> Client:
        c = self.config
        if c.stdio is not None:
            command = StdioServerParameters(command=c.stdio.command, args=list(c.stdio.args), env=dict(c.stdio.env))
            return Client(command)
        http = httpx2.AsyncClient(headers=dict(c.headers), timeout=HTTP_TIMEOUT)
        stack.push_async_callback(http.aclose)
        return Client(streamable_http_client(c.url, http_client=http))

    async def call(self, name: str, arguments_json: str, timeout: float) -> McpResult:
        """Run one tool call; every failure becomes an error result for the language model."""
        try:
            arguments = json.loads(arguments_json or "{}")
        except ValueError:
            return McpResult(f"error: the arguments of {name!r} are not JSON", True)
        if not isinstance(arguments, dict):
            return McpResult(f"error: the arguments of {name!r} are not a JSON object", True)
        client = self._client
        if client is None:
            return McpResult(f"error: the MCP server {self.config.name!r} is not connected", True)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancellation
                result = await client.call_tool(name, arguments)
        except TimeoutError:
            return McpResult(f"error: the tool {name!r} did not answer within {timeout:g} s", True)
        except Exception as exc:  # noqa: BLE001 - a protocol or transport failure of this one call
            self._report_lost(_reason(exc))
            return McpResult(f"error: the tool {name!r} failed: {_reason(exc)}", True)
        return McpResult(result_text(result), bool(result.is_error))

    def _report_lost(self, reason: str) -> None:
        if self._lost or self._stop.is_set():
            return
        self._lost = True
        log.warning("MCP connection lost", extra={"mcp_server": self.config.name, "error": reason})
        if self._on_lost is not None:
            self._on_lost(reason)

    async def aclose(self) -> None:
        """Close the connection (and end a stdio server's process); idempotent."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT_SECONDS)
        except TimeoutError:
            await cancel_and_wait([task])


async def _list_tools(client: Client) -> list[McpTool]:
    tools: list[McpTool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools.extend(McpTool(t.name, t.description or "", dict(t.input_schema)) for t in page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools
        if len(tools) >= MAX_LISTED_TOOLS:
            raise McpUnavailable(f"lists more than {MAX_LISTED_TOOLS} tools")


def result_text(result: mcp_types.CallToolResult) -> str:
    """The text the language model sees: text blocks joined, else the structured value as JSON."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content omitted]")
    if not any(isinstance(b, mcp_types.TextContent) for b in result.content) and result.structured_content is not None:
        parts = [json.dumps(result.structured_content)]
    text = "\n".join(parts)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f" [truncated at {MAX_RESULT_CHARS} characters]"
    return text


def _reason(exc: BaseException) -> str:
    """A one-line cause, looking through the SDK's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
