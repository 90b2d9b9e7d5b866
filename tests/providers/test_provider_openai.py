from __future__ import annotations

import asyncio
import json
from contextlib import aclosing

import pytest
from openai_stand_in import Reply, StandInOpenAIServer, finish_chunk, text_chunk, tool_chunk, usage_chunk

from parley.chat import ChatMessage, Role, ToolCall, ToolSpec
from parley.errors import InvalidArgument
from parley.providers import registry
from parley.providers.base import LLM, ProviderError, TextDelta, Usage
from parley.providers.workers import Workers

WEATHER = ToolSpec("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})
ASK = [ChatMessage(Role.SYSTEM, "Be brief."), ChatMessage(Role.USER, "What is the weather in Oslo?")]


def openai(server: StandInOpenAIServer, workers: Workers, **options: object) -> LLM:
    base = {"base_url": server.base_url, "api_key": "sk-test", "model": "stand-in-model", "retry_backoff_s": 0.0}
    return registry.build("llm", "openai", base | options, workers=workers)


async def collect(llm: LLM, messages: list[ChatMessage] = ASK, tools: tuple[ToolSpec, ...] = ()) -> list[object]:
    try:
        return [chunk async for chunk in llm.chat(messages, list(tools))]
    finally:
        await llm.aclose()


async def test_streams_tokens_as_they_arrive(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    gate = asyncio.Event()
    openai_stand_in.replies.append(
        Reply(
            [text_chunk("It is"), text_chunk(" sunny"), text_chunk(".", finish="stop"), usage_chunk(12, 3)], gate=gate
        )
    )
    llm = openai(openai_stand_in, workers)
    async with aclosing(llm.chat(ASK, [])) as stream:
        first = await anext(stream)  # the server is holding the rest until the gate opens
        gate.set()
        rest = [chunk async for chunk in stream]
    await llm.aclose()
    assert first == TextDelta("It is")
    assert rest == [TextDelta(" sunny"), TextDelta("."), Usage(12, 3)]
    request = openai_stand_in.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["model"] == "stand-in-model"
    assert request.body["stream"] is True
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the weather in Oslo?"},
    ]


async def test_parses_streamed_tool_calls(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    openai_stand_in.replies.append(
        Reply(
            [
                tool_chunk(0, id="call_a", name="get_weather", arguments='{"ci'),
                tool_chunk(0, arguments='ty": "Oslo"}'),
                tool_chunk(1, id="call_b", name="get_weather", arguments='{"city": "Bergen"}'),
                finish_chunk("tool_calls"),
            ]
        )  # fmt: skip
    )
    chunks = await collect(openai(openai_stand_in, workers), tools=(WEATHER,))
    assert chunks == [
        ToolCall("call_a", "get_weather", '{"city": "Oslo"}'),
        ToolCall("call_b", "get_weather", '{"city": "Bergen"}'),
        Usage(0, 0),
    ]
    assert openai_stand_in.requests[0].body["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER.parameters},
        }  # fmt: skip
    ]


async def test_sends_tool_results_back_in_openai_form(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    openai_stand_in.replies.append(Reply([text_chunk("Sunny in Oslo.", finish="stop")]))
    call = ToolCall("call_a", "get_weather", '{"city": "Oslo"}')
    history = ASK + [
        ChatMessage(Role.ASSISTANT, "", tool_calls=[call]),
        ChatMessage(Role.TOOL, '{"sky": "clear"}', tool_call_id="call_a"),
    ]
    chunks = await collect(openai(openai_stand_in, workers), history, (WEATHER,))
    assert chunks[0] == TextDelta("Sunny in Oslo.")
    sent = openai_stand_in.requests[0].body["messages"]
    assert sent[2] == {  # "content": "", never null (llama.cpp's server refuses null)
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": call.arguments_json}}
        ],
    }
    assert sent[3] == {"role": "tool", "tool_call_id": "call_a", "content": '{"sky": "clear"}'}


async def test_http_500_is_a_failed_error_after_bounded_retries(
    openai_stand_in: StandInOpenAIServer, workers: Workers
) -> None:
    openai_stand_in.replies += [Reply(status=500), Reply(status=500)]
    with pytest.raises(ProviderError) as err:
        await collect(openai(openai_stand_in, workers, max_retries=1))
    assert (err.value.kind, err.value.stage, err.value.provider) == ("failed", "llm", "openai")
    assert "500" in err.value.message
    assert len(openai_stand_in.requests) == 2


async def test_a_retry_after_500_can_succeed(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    openai_stand_in.replies += [Reply(status=503), Reply([text_chunk("ok", finish="stop")])]
    chunks = await collect(openai(openai_stand_in, workers, max_retries=2))
    assert chunks[0] == TextDelta("ok")
    assert len(openai_stand_in.requests) == 2


async def test_client_errors_are_not_retried(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    openai_stand_in.replies += [Reply(status=401)]
    with pytest.raises(ProviderError) as err:
        await collect(openai(openai_stand_in, workers, max_retries=3))
    assert err.value.kind == "failed" and "401" in err.value.message
    assert len(openai_stand_in.requests) == 1


async def test_silent_endpoint_is_a_timeout(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    openai_stand_in.replies.append(Reply(stall=True))
    with pytest.raises(ProviderError) as err:
        await collect(openai(openai_stand_in, workers, timeout_s=0.2, max_retries=0))
    assert err.value.kind == "timeout"


async def test_malformed_chunk_is_a_malformed_error(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    openai_stand_in.replies.append(Reply([text_chunk("Hel"), '{"choices": [{"delta": {"content": "lo"'], done=False))
    llm = openai(openai_stand_in, workers, max_retries=3)
    got: list[object] = []
    with pytest.raises(ProviderError) as err:
        async for chunk in llm.chat(ASK, []):
            got.append(chunk)
    await llm.aclose()
    assert err.value.kind == "malformed"
    assert got == [TextDelta("Hel")]
    assert len(openai_stand_in.requests) == 1


async def test_tool_call_with_broken_arguments_is_malformed(
    openai_stand_in: StandInOpenAIServer, workers: Workers
) -> None:
    openai_stand_in.replies.append(
        Reply([tool_chunk(0, id="c", name="get_weather", arguments='{"city": '), finish_chunk("tool_calls")])
    )
    with pytest.raises(ProviderError) as err:
        await collect(openai(openai_stand_in, workers), tools=(WEATHER,))
    assert err.value.kind == "malformed"


async def test_error_object_in_the_stream_is_malformed(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    openai_stand_in.replies.append(Reply([{"error": {"message": "overloaded"}}]))
    with pytest.raises(ProviderError) as err:
        await collect(openai(openai_stand_in, workers))
    assert err.value.kind == "malformed" and "overloaded" in err.value.message


async def test_stream_cut_before_the_end_is_failed(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    openai_stand_in.replies.append(Reply([text_chunk("Half an")], done=False))
    with pytest.raises(ProviderError) as err:
        await collect(openai(openai_stand_in, workers))
    assert err.value.kind == "failed"


async def test_nothing_listening_is_failed(workers: Workers) -> None:
    llm = registry.build(
        "llm",
        "openai",
        {"base_url": "http://127.0.0.1:9/v1", "max_retries": 1, "retry_backoff_s": 0.0},
        workers=workers,
    )
    with pytest.raises(ProviderError) as err:
        await collect(llm)
    assert err.value.kind == "failed"


async def test_closing_the_stream_hangs_up_on_the_endpoint(
    openai_stand_in: StandInOpenAIServer, workers: Workers
) -> None:
    openai_stand_in.replies.append(Reply([text_chunk("One"), text_chunk(" two", finish="stop")], gate=asyncio.Event()))
    llm = openai(openai_stand_in, workers)
    stream = llm.chat(ASK, [])
    assert await anext(stream) == TextDelta("One")
    await stream.aclose()
    await llm.aclose()
    await openai_stand_in.disconnected.wait()


async def test_cancelling_the_consumer_hangs_up(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    openai_stand_in.replies.append(Reply([text_chunk("One"), text_chunk(" two", finish="stop")], gate=asyncio.Event()))
    llm = openai(openai_stand_in, workers)
    first = asyncio.Event()

    async def consume() -> None:
        async with aclosing(llm.chat(ASK, [])) as stream:
            async for _ in stream:
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await llm.aclose()
    await openai_stand_in.disconnected.wait()


async def test_environment_supplies_url_key_and_model(
    openai_stand_in: StandInOpenAIServer, workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_stand_in.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    openai_stand_in.replies.append(Reply([text_chunk("hi", finish="stop")]))
    llm = registry.build("llm", "openai", {"temperature": 0.3, "max_tokens": 50}, workers=workers)
    await collect(llm)
    request = openai_stand_in.requests[0]
    assert request.headers["authorization"] == "Bearer sk-env"
    assert (request.body["model"], request.body["temperature"], request.body["max_tokens"]) == ("env-model", 0.3, 50)


def test_openai_without_a_key_is_rejected_at_start(workers: Workers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(InvalidArgument) as err:
        registry.build("llm", "openai", {}, workers=workers)
    assert err.value.field == "config.providers.llm.options.api_key"


def test_bad_base_url_is_rejected(workers: Workers) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.build("llm", "openai", {"base_url": "ftp://x"}, workers=workers)
    assert err.value.field == "config.providers.llm.options.base_url"


def test_request_json_is_plain_json() -> None:
    from parley.providers.llm.openai import OPTIONS
    from parley.providers.llm.openai_wire import request_body
    from parley.providers.options import validate

    body = request_body("m", ASK, [WEATHER], validate(OPTIONS, {}, "x"))
    assert json.loads(json.dumps(body)) == body
    assert body["stream_options"] == {"include_usage": True}
    assert "temperature" not in body and "max_tokens" not in body


async def test_429_waits_for_its_retry_after(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    openai_stand_in.replies += [Reply(status=429, headers={"retry-after-ms": "300"}),
                                Reply([text_chunk("ok", finish="stop")])]
    chunks = await collect(openai(openai_stand_in, workers, max_retries=1))
    assert chunks[0] == TextDelta("ok")
    first, second = openai_stand_in.requests
    assert second.received - first.received >= 0.3  # not before the server said


async def test_a_retry_after_longer_than_the_longest_wait_fails_at_once(
    openai_stand_in: StandInOpenAIServer, workers: Workers
) -> None:
    openai_stand_in.replies += [Reply(status=429, headers={"retry-after": "120"}), Reply([text_chunk("late")])]
    with pytest.raises(ProviderError) as err:
        await collect(openai(openai_stand_in, workers, max_retries=3, max_retry_wait_s=5))
    assert err.value.kind == "failed" and "429" in err.value.message
    assert len(openai_stand_in.requests) == 1


async def test_a_tool_name_repeated_in_every_chunk_is_taken_once(
    openai_stand_in: StandInOpenAIServer, workers: Workers
) -> None:
    """llama.cpp's server sends function.name with every chunk of a call."""
    openai_stand_in.replies.append(Reply([
        tool_chunk(0, id="call_a", name="get_weather", arguments='{"ci'),
        tool_chunk(0, name="get_weather", arguments='ty": "Oslo"}'),
        finish_chunk("tool_calls"),
    ]))  # fmt: skip
    chunks = await collect(openai(openai_stand_in, workers), tools=(WEATHER,))
    assert chunks[0] == ToolCall("call_a", "get_weather", '{"city": "Oslo"}')


async def test_tool_choice_forces_the_first_round_only(openai_stand_in: StandInOpenAIServer, workers: Workers) -> None:
    openai_stand_in.replies += [Reply([text_chunk("a", finish="stop")]), Reply([text_chunk("b", finish="stop")])]
    await collect(openai(openai_stand_in, workers, tool_choice="get_weather"), tools=(WEATHER,))
    call = ToolCall("call_a", "get_weather", '{"city": "Oslo"}')
    answered = ASK + [ChatMessage(Role.ASSISTANT, "", tool_calls=[call]),
                      ChatMessage(Role.TOOL, '{"sky": "clear"}', tool_call_id="call_a")]
    await collect(openai(openai_stand_in, workers, tool_choice="get_weather"), answered, (WEATHER,))
    first, later = (r.body for r in openai_stand_in.requests)
    assert first["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert "tool_choice" not in later  # answering the tool's result, the model speaks freely


def test_a_bad_tool_choice_is_rejected(workers: Workers) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.build("llm", "openai", {"base_url": "http://127.0.0.1:9/v1", "tool_choice": "a b"}, workers=workers)
    assert err.value.field == "config.providers.llm.options.tool_choice"
