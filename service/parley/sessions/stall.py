"""A watchdog on streaming providers: one that stops producing fails its utterance.

A TTS or LLM that hangs (a stuck connection, a wedged engine) would hold its
utterance, and every utterance queued behind it, forever. Wrapped here, each
next chunk must arrive within `seconds`; if it does not, the provider's
stream is cancelled and ProviderError("timeout") is raised, which the
speaker turns into a FAILED utterance and a warning event. The session and
its other utterances carry on. Waiting for a client's tool result happens
between two model streams, so it is not counted as a stall.

The wait is `asyncio.timeout`, not `asyncio.wait_for`: on Python 3.11,
wait_for returns the result when its task is cancelled in the same loop
step as the chunk arrives, so a cancelled speech task went on synthesizing
and a closing session waited for it forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from parley.providers.base import ProviderError

T = TypeVar("T")


async def _watched(stream: AsyncIterator[T], stage: str, provider: str, seconds: float) -> AsyncIterator[T]:
    it = aiter(stream)
    loop = asyncio.get_running_loop()
    try:
        # One timeout for the whole stream, re-armed for each chunk and disarmed while the consumer
        # holds the chunk (its time is not the provider's): a chunk costs two timer moves, not a new
        # timeout entered and left.
        async with asyncio.timeout(None) as deadline:
            while True:
                deadline.reschedule(loop.time() + seconds)
                try:
                    item = await anext(it)
                except StopAsyncIteration:
                    return
                deadline.reschedule(None)
                yield item
    except TimeoutError:
        raise ProviderError("timeout", stage, provider, f"produced nothing for {seconds:g} s") from None
    finally:
        close = getattr(it, "aclose", None)
        if close is not None:
            await close()


class _Guarded:
    """The provider itself, but its stream method is watched; every other attribute passes through."""

    def __init__(self, provider: Any, stage: str, seconds: float) -> None:
        self._provider = provider
        self._stage = stage
        self._seconds = seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    def _watch(self, stream: AsyncIterator[T]) -> AsyncIterator[T]:
        return _watched(stream, self._stage, getattr(self._provider, "name", self._stage), self._seconds)


class GuardedTTS(_Guarded):
    def synthesize_timed(self, text: str) -> AsyncIterator[Any]:
        return self._watch(self._provider.synthesize_timed(text))


class GuardedLLM(_Guarded):
    def chat(self, messages: Any, tools: Any) -> AsyncIterator[Any]:
        return self._watch(self._provider.chat(messages, tools))


def guard_tts(tts: Any, seconds: float) -> Any:
    return GuardedTTS(tts, "tts", seconds) if seconds > 0 else tts


def guard_llm(llm: Any, seconds: float) -> Any:
    return GuardedLLM(llm, "llm", seconds) if seconds > 0 else llm
