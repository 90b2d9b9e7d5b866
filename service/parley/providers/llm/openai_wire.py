"""OpenAI Chat Completions wire format: requests out, streamed chunks in.

Pure functions and a small accumulator, no I/O, so that the parsing of every
field the endpoint may send is testable on its own. The format is the one
served by OpenAI, vLLM, llama.cpp's server and Ollama under /v1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from parley.chat import ChatMessage, Role, ToolCall, ToolSpec


class Malformed(ValueError):
    """The endpoint sent something that is not a valid chunk."""


def request_body(
    model: str, messages: list[ChatMessage], tools: list[ToolSpec], options: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [_message(m) for m in messages], "stream": True}
    if options["include_usage"]:
        body["stream_options"] = {"include_usage": True}
    if tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in tools
        ]
    for key in ("temperature", "max_tokens"):
        if options[key] is not None:
            body[key] = options[key]
    return body


def _message(message: ChatMessage) -> dict[str, Any]:
    if message.role is Role.TOOL:
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    out: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.role is Role.ASSISTANT and message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in message.tool_calls
        ]
    return out


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamState:
    """What the chunks of one answer have said so far."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None

    def feed(self, data: str) -> str:
        """Take one SSE data payload; returns the text it adds ("" if none)."""
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise Malformed(f"chunk is not JSON: {data[:80]!r}") from exc
        if not isinstance(chunk, dict):
            raise Malformed("chunk is not an object")
        if "error" in chunk:
            raise Malformed(f"endpoint error: {chunk['error']}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        choices = chunk.get("choices")
        if choices is None or choices == []:
            return ""
        if not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise Malformed("choices is not a list of objects")
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise Malformed("delta is not an object")
        for call in delta.get("tool_calls") or ():
            self._feed_call(call)
        content = delta.get("content")
        if content is None:
            return ""
        if not isinstance(content, str):
            raise Malformed("delta.content is not a string")
        self.text.append(content)
        return content

    def _feed_call(self, call: Any) -> None:
        if not isinstance(call, dict):
            raise Malformed("tool call delta is not an object")
        index = call.get("index", len(self.calls))
        if not isinstance(index, int):
            raise Malformed("tool call index is not an integer")
        partial = self.calls.setdefault(index, _PartialCall())
        if call.get("id"):
            partial.id = str(call["id"])
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise Malformed("tool call function is not an object")
        if function.get("name"):
            partial.name += str(function["name"])
        if function.get("arguments"):
            partial.arguments.append(str(function["arguments"]))

    def take_tool_calls(self) -> list[ToolCall]:
        """The finished tool calls in order, checked; the state forgets them."""
        out: list[ToolCall] = []
        for index in sorted(self.calls):
            partial = self.calls[index]
            if not partial.name:
                raise Malformed(f"tool call {index} has no name")
            arguments = "".join(partial.arguments).strip() or "{}"
            try:
                parsed = json.loads(arguments)
            except json.JSONDecodeError as exc:
                raise Malformed(f"tool call {partial.name} arguments are not JSON: {arguments[:80]!r}") from exc
            if not isinstance(parsed, dict):
                raise Malformed(f"tool call {partial.name} arguments are not a JSON object")
            out.append(ToolCall(partial.id or f"call_{index}", partial.name, arguments))
        self.calls.clear()
        return out
