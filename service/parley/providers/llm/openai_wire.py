"""OpenAI Chat Completions in Parley's terms: the request's fields out, streamed chunks in.

Pure functions and a small accumulator, no I/O (the `openai` SDK does the
HTTP and the server-sent events), so that what Parley makes of every field an
endpoint may send is testable on its own. Endpoints differ: OpenAI names a
tool call once, llama.cpp's server repeats the name in every chunk; OpenAI
accepts `"content": null` next to tool calls, llama.cpp's server needs a string.
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
    """The keyword arguments of a streamed `chat.completions.create` call."""
    body: dict[str, Any] = {"model": model, "messages": [_message(m) for m in messages], "stream": True}
    if options["include_usage"]:
        body["stream_options"] = {"include_usage": True}
    if tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in tools
        ]
        choice = options["tool_choice"]
        if choice in ("auto", "none") or (choice and not _answers_tool_results(messages)):
            named = {"type": "function", "function": {"name": choice}}
            body["tool_choice"] = choice if choice in TOOL_CHOICES else named
    for key in ("temperature", "max_tokens"):
        if options[key] is not None:
            body[key] = options[key]
    return body


TOOL_CHOICES = ("auto", "none", "required")


def _answers_tool_results(messages: list[ChatMessage]) -> bool:
    """True in a reply's later rounds, where the model answers tool results: a forced call would loop."""
    last_user = max((n for n, m in enumerate(messages) if m.role is Role.USER), default=-1)
    return any(m.role is Role.TOOL for m in messages[last_user + 1:])


def _message(message: ChatMessage) -> dict[str, Any]:
    if message.role is Role.TOOL:
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    out: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.role is Role.ASSISTANT and message.tool_calls:
        out["content"] = message.content or ""  # llama.cpp's server refuses null and needs the key
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

    def feed(self, chunk: Any) -> str:
        """Take one streamed chunk (a JSON object); returns the text it adds ("" if none)."""
        if not isinstance(chunk, dict):
            raise Malformed("chunk is not an object")
        if chunk.get("error"):
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
            partial.name = str(function["name"])  # sent once (OpenAI) or with every chunk (llama.cpp): never joined
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
