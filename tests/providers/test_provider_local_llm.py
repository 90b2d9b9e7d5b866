from __future__ import annotations

import asyncio
from contextlib import aclosing

from parley.chat import ChatMessage, Role
from parley.providers import registry
from parley.providers.base import LLM, TextDelta, Usage
from parley.providers.llm.prompt import first_line, render
from parley.providers.workers import Workers

ASK = [
    ChatMessage(Role.SYSTEM, "A conversation with a helpful voice assistant."),
    ChatMessage(Role.USER, "What is the capital of France?"),
]


def local(workers: Workers, **options: object) -> LLM:
    return registry.build("llm", "local", {"seed": 7, "max_tokens": 24} | options, workers=workers)


async def test_local_model_answers_offline_in_one_line(workers: Workers) -> None:
    chunks = [c async for c in local(workers).chat(ASK, [])]
    text = "".join(c.text for c in chunks if isinstance(c, TextDelta))
    usage = chunks[-1]
    assert isinstance(usage, Usage)
    assert text.strip() and "\n" not in text
    assert text == text.lstrip()
    assert usage.input_tokens > 10 and 0 < usage.output_tokens <= 24
    assert all(isinstance(c, TextDelta) for c in chunks[:-1])


async def test_same_seed_same_answer(workers: Workers) -> None:
    async def answer() -> str:
        return "".join([c.text async for c in local(workers).chat(ASK, []) if isinstance(c, TextDelta)])

    assert await answer() == await answer()


async def test_closing_a_generation_frees_the_model_for_the_next(workers: Workers) -> None:
    llm = local(workers, max_tokens=200, temperature=1.5)
    async with aclosing(llm.chat(ASK, [])) as stream:
        assert isinstance(await anext(stream), TextDelta)
    chunks = [c async for c in llm.chat(ASK, [])]
    assert isinstance(chunks[-1], Usage)


async def test_cancelled_consumer_stops_and_releases(workers: Workers) -> None:
    llm = local(workers, max_tokens=200)
    started = asyncio.Event()

    async def consume() -> None:
        async with aclosing(llm.chat(ASK, [])) as stream:
            async for _ in stream:
                started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    chunks = [c async for c in llm.chat(ASK, [])]
    assert isinstance(chunks[-1], Usage)


async def test_two_sessions_share_the_model_one_at_a_time(workers: Workers) -> None:
    async def answer(question: str) -> list[object]:
        llm = local(workers)
        return [c async for c in llm.chat([ChatMessage(Role.USER, question)], [])]

    one, two = await asyncio.gather(answer("Hello, who are you?"), answer("What day is it?"))
    assert isinstance(one[-1], Usage) and isinstance(two[-1], Usage)


def test_prompt_keeps_the_newest_turns_within_budget() -> None:
    messages = [ChatMessage(Role.SYSTEM, "Be kind.")] + [
        ChatMessage(Role.USER if i % 2 == 0 else Role.ASSISTANT, f"turn {i} " + "word " * 20) for i in range(10)
    ]
    prompt = render(messages, lambda text: len(text.split()), budget=80)
    assert prompt.startswith("Be kind.\n")
    assert "turn 9" in prompt and "turn 0" not in prompt
    assert prompt.endswith("Assistant:")
    assert len(prompt.split()) <= 80


def test_prompt_shows_tool_results_and_skips_empty_assistant_turns() -> None:
    messages = [
        ChatMessage(Role.USER, "Weather?"),
        ChatMessage(Role.ASSISTANT, ""),
        ChatMessage(Role.TOOL, "sunny", tool_call_id="c1"),
    ]
    assert render(messages, len, 10_000) == "User: Weather?\n(Tool result: sunny)\nAssistant:"


def test_first_line_cuts_at_the_first_newline_after_text() -> None:
    assert list(first_line(["\n", "\n", " Paris", " is", " nice.\nUser", ": more"])) == ["Paris", " is", " nice."]
