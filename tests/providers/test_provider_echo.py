from __future__ import annotations

import json

import pytest

from parley.chat import ChatMessage, Role, ToolCall
from parley.errors import InvalidArgument
from parley.providers import registry
from parley.providers.base import TextDelta, Usage
from parley.providers.workers import Workers


async def test_echo_answers_from_its_template_word_by_word(workers: Workers) -> None:
    llm = registry.build("llm", "echo", {"template": "Heard: {user}"}, workers=workers)
    chunks = [c async for c in llm.chat([ChatMessage(Role.USER, "good morning")], [])]
    assert chunks == [TextDelta("Heard:"), TextDelta(" good"), TextDelta(" morning"), Usage(2, 3)]


async def test_echo_scripted_tool_calls_then_answer(workers: Workers) -> None:
    options = {
        "tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}],
        "after_tools_template": "Found {tool_results}",
    }
    llm = registry.build("llm", "echo", options, workers=workers)
    history = [ChatMessage(Role.USER, "find x")]
    first = [c async for c in llm.chat(history, [])]
    call = first[0]
    assert call == ToolCall("call_0", "lookup", json.dumps({"q": "x"}))
    history += [ChatMessage(Role.ASSISTANT, "", tool_calls=[call]), ChatMessage(Role.TOOL, "42", tool_call_id="call_0")]
    second = [c async for c in llm.chat(history, [])]
    assert "".join(c.text for c in second if isinstance(c, TextDelta)) == "Found 42"


def test_echo_tool_call_without_name_is_rejected(workers: Workers) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.build("llm", "echo", {"tool_calls": [{"arguments": {}}]}, workers=workers)
    assert err.value.field == "config.providers.llm.options.tool_calls[0].name"
