"""The provider watchdog lets a cancellation through even when the next chunk is ready at that moment.

On Python 3.11, `asyncio.wait_for` returns the inner result when its task is
cancelled in the same loop step as that result arrives. A speech task that
was cancelled (its session closing) then went on synthesizing, waited for
room in a mixer nobody played any more, and the session's close waited for
it forever: the server did not stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from parley.providers.base import ProviderError
from parley.sessions.stall import guard_llm


class CancelsItsReader:
    """A stand-in LLM: cancels the task reading it just before it hands over its second chunk."""

    name = "cancels-its-reader"

    def __init__(self) -> None:
        self.reader: asyncio.Task[list[str]] | None = None

    async def chat(self, messages: object, tools: object) -> AsyncIterator[str]:
        for n in range(5):
            if n == 1:
                assert self.reader is not None
                self.reader.cancel()
            yield f"chunk {n}"


class Stalls:
    """A stand-in LLM that says one chunk and then nothing."""

    name = "stalls"

    async def chat(self, messages: object, tools: object) -> AsyncIterator[str]:
        yield "hello"
        await asyncio.Event().wait()


async def read_all(stream: AsyncIterator[str], got: list[str]) -> list[str]:
    async for chunk in stream:
        got.append(chunk)
        await asyncio.sleep(0)
    return got


async def test_a_reader_cancelled_as_a_chunk_arrives_stops() -> None:
    llm = CancelsItsReader()
    got: list[str] = []
    llm.reader = asyncio.create_task(read_all(guard_llm(llm, 5.0).chat([], []), got))
    with pytest.raises(asyncio.CancelledError):
        await llm.reader
    assert got[0] == "chunk 0" and len(got) <= 2  # it did not read on to the end


async def test_a_provider_that_stops_producing_fails_with_a_timeout() -> None:
    got: list[str] = []
    with pytest.raises(ProviderError) as caught:
        await read_all(guard_llm(Stalls(), 0.05).chat([], []), got)
    assert caught.value.kind == "timeout" and got == ["hello"]


class Steady:
    """A stand-in LLM that hands over each of its chunks at once."""

    name = "steady"

    async def chat(self, messages: object, tools: object) -> AsyncIterator[str]:
        for n in range(4):
            yield f"chunk {n}"


async def test_time_the_reader_spends_on_a_chunk_is_not_the_providers() -> None:
    """A speaker waits for room in the mixer between chunks, for seconds: that is no stall of the voice."""
    got: list[str] = []
    async for chunk in guard_llm(Steady(), 0.05).chat([], []):
        got.append(chunk)
        await asyncio.sleep(0.12)  # more than twice the limit, between every two chunks
    assert got == [f"chunk {n}" for n in range(4)]
