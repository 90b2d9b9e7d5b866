"""Client tool calls in flight: the model's call waits for SubmitToolResult."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from parley.chat import ToolCall, ToolSource, ToolSpec
from parley.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from parley.mcp.toolbox import McpToolbox
from parley.sessions import events as ev


@dataclass(frozen=True)
class ToolOutcome:
    result: str
    is_error: bool


class ToolCalls:
    """Pending client tool calls of one session, and the ids already answered.

    A result for an unknown id is INVALID_ARGUMENT; a second result for the
    same call (or one after its timeout) is FAILED_PRECONDITION.
    """

    def __init__(self, max_pending: int = 16, max_answered: int = 1000) -> None:
        self._pending: dict[str, tuple[ToolCall, asyncio.Future[ToolOutcome]]] = {}
        self._answered: dict[str, None] = {}
        self._max_pending = max_pending
        self._max_answered = max_answered

    async def wait(self, call: ToolCall, timeout: float) -> ToolOutcome:
        """Wait for the client's answer; a timeout becomes an error result for the model."""
        if len(self._pending) >= self._max_pending:
            raise ResourceExhausted("pending_tool_calls", f"more than {self._max_pending} tool calls pending")
        future: asyncio.Future[ToolOutcome] = asyncio.get_running_loop().create_future()
        self._pending[call.id] = (call, future)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a cancellation
                return await future
        except TimeoutError:
            return ToolOutcome(f"error: the tool {call.name!r} did not answer within {timeout:g} s", True)
        finally:
            self._pending.pop(call.id, None)
            self._remember(call.id)

    def submit(self, call_id: str, result: str, is_error: bool) -> ToolCall:
        entry = self._pending.get(call_id)
        if entry is None:
            if call_id in self._answered:
                raise FailedPrecondition(f"tool call {call_id!r} was already answered or timed out",
                                         reason="TOOL_CALL_ANSWERED")
            raise InvalidArgument("tool_call_id", f"no pending tool call {call_id[:80]!r} in this session")
        call, future = entry
        if future.done():
            raise FailedPrecondition(f"tool call {call_id!r} was already answered", reason="TOOL_CALL_ANSWERED")
        future.set_result(ToolOutcome(result, is_error))
        return call

    def cancel_all(self) -> None:
        for _, future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def _remember(self, call_id: str) -> None:
        self._answered[call_id] = None
        while len(self._answered) > self._max_answered:
            self._answered.pop(next(iter(self._answered)))


class ToolRunner:
    """Runs the model's tool calls: a client tool waits for SubmitToolResult, an MCP tool is called here."""

    def __init__(self, tools: list[ToolSpec], calls: ToolCalls, mcp: McpToolbox, bus: ev.EventBus,
                 client_timeout: float) -> None:
        self._tools = tools
        self._calls = calls
        self._mcp = mcp
        self._bus = bus
        self._client_timeout = client_timeout

    async def __call__(self, call: ToolCall) -> ToolOutcome:
        spec = next((t for t in self._tools if t.name == call.name), None)
        mcp = spec is not None and spec.source is ToolSource.MCP
        timeout = self._mcp.call_timeout(call.name) if mcp else self._client_timeout
        self._bus.publish(ev.ToolCallRequested(call, timeout))
        if spec is None:
            outcome = ToolOutcome(f"error: unknown tool {call.name!r}", True)
        elif mcp:
            result = await self._mcp.call(call)
            outcome = ToolOutcome(result.text, result.is_error)
        else:
            outcome = await self._calls.wait(call, timeout)
        self._bus.publish(ev.ToolCallCompleted(call, outcome.result, outcome.is_error))
        return outcome
