"""Stand-in LLM for engine tests and capacity benchmarks: no language model.

It answers from a template, word by word, and can make scripted tool calls:
if `tool_calls` is set and the last message is the user's, it calls those
tools instead of answering; after the tool results come back it answers with
`after_tools_template`. Usage counts words.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from parley.chat import ChatMessage, Role, ToolCall, ToolSpec
from parley.errors import InvalidArgument
from parley.providers.base import LLM, LLMChunk, TextDelta, Usage
from parley.providers.options import Opt
from parley.providers.stand_in_faults import Fault
from parley.providers.workers import Workers

OPTIONS = {
    "template": Opt(
        str, "You said: {user}", help="{user} is the last user message, {instructions} the last system one"
    ),
    "after_tools_template": Opt(str, "Done: {tool_results}", help="{tool_results} joins the tool results"),
    "tool_calls": Opt(list, [], items=dict, help='[{"name": "...", "arguments": {...}}, ...]'),
    "token_delay_ms": Opt(int, 0, min=0, max=10_000, help="pause before each word, to imitate generation time"),
    "fault_word": Opt(str, "", help="a user message containing this word meets `fault` (to test failure handling)"),
    "fault": Opt(str, "raise", choices=("raise", "hang"), help="raise: crash; hang: never yield again"),
}


class EchoLLM(LLM):
    name = "echo"
    model = "echo"

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self._template = options["template"]
        self._after_tools = options["after_tools_template"]
        self._delay = options["token_delay_ms"] / 1000
        self._calls = [_scripted_call(i, spec) for i, spec in enumerate(options["tool_calls"])]
        self._fault = Fault(options["fault_word"], options["fault"])

    async def chat(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> AsyncIterator[LLMChunk]:
        last = messages[-1] if messages else ChatMessage(Role.USER)
        await self._fault.check(_last(messages, Role.USER))
        if self._calls and last.role is Role.USER:
            for call in self._calls:
                yield call
            yield Usage(_words(messages), 0)
            return
        if last.role is Role.TOOL:
            results = [m.content for m in _trailing_tool_results(messages)]
            text = self._after_tools.format(tool_results="; ".join(results))
        else:
            text = self._template.format(user=_last(messages, Role.USER), instructions=_last(messages, Role.SYSTEM))
        words = text.split(" ")
        for index, word in enumerate(words):
            if self._delay:
                await asyncio.sleep(self._delay)
            yield TextDelta(word if index == 0 else " " + word)
        yield Usage(_words(messages), len(words))


def _scripted_call(index: int, spec: dict[str, Any]) -> ToolCall:
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"config.providers.llm.options.tool_calls[{index}].name", "must be a non-empty string")
    return ToolCall(f"call_{index}", name, json.dumps(spec.get("arguments", {})))


def _last(messages: list[ChatMessage], role: Role) -> str:
    return next((m.content for m in reversed(messages) if m.role is role), "")


def _trailing_tool_results(messages: list[ChatMessage]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for message in reversed(messages):
        if message.role is not Role.TOOL:
            break
        out.insert(0, message)
    return out


def _words(messages: list[ChatMessage]) -> int:
    return sum(len(m.content.split()) for m in messages)
