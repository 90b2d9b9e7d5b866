"""One reply: the language model over the chat context, with tool rounds.

It yields text pieces as the model produces them, sentence by sentence, so
speech can start before the model is done.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace

from parley.chat import ChatMessage, Role, ToolCall, ToolSpec
from parley.providers.base import LLM, TextDelta, Usage
from parley.providers.markup import speakable
from parley.sessions.observer import NO_REPLY_OBSERVER, ReplyObserver
from parley.sessions.tools import ToolOutcome

MAX_TOOL_ROUNDS = 5
_PIECE_END = re.compile(r"[.!?…;:](?=\s)|\n")
_FIRST_PIECE_END = re.compile(r"[.!?…;:,](?=\s)|\n")
FIRST_PIECE_WORDS = 5


class SentenceBuffer:
    """Collects streamed text and releases it in speakable pieces (markup taken out).

    Pieces end at sentence ends. The first piece of a reply is released
    sooner, at the first clause mark or after `FIRST_PIECE_WORDS` words, so
    the caller hears the agent start while the model is still writing.
    """

    def __init__(self, min_chars: int = 12, *, first: bool = True) -> None:
        self._text = ""
        self._min_chars = min_chars
        self._first = first

    def push(self, delta: str) -> list[str]:
        self._text += delta
        pieces: list[str] = []
        while True:
            end = self._piece_end()
            if end is None:
                return pieces
            piece, self._text = speakable(self._text[:end]), self._text[end:]
            if piece:
                pieces.append(piece)
                self._first = False

    def _piece_end(self) -> int | None:
        marks = _FIRST_PIECE_END if self._first else _PIECE_END
        match = next((m for m in marks.finditer(self._text) if m.end() >= self._min_chars), None)
        if match is not None:
            return match.end()
        if self._first:
            words = list(re.finditer(r"\S+(?=\s)", self._text))
            if len(words) >= FIRST_PIECE_WORDS:
                return words[FIRST_PIECE_WORDS - 1].end()
        return None

    def flush(self) -> list[str]:
        piece, self._text = speakable(self._text), ""
        return [piece] if piece else []


@dataclass
class ReplyStats:
    llm_request_time: float = 0.0
    llm_ttft_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)


ToolRunner = Callable[[ToolCall], Awaitable[ToolOutcome]]


async def generate_reply(
    llm: LLM,
    history: list[ChatMessage],
    tools: list[ToolSpec],
    run_tool: ToolRunner,
    *,
    instructions: str = "",
    stats: ReplyStats,
    trace: ReplyObserver = NO_REPLY_OBSERVER,
) -> AsyncIterator[str]:
    """Yield speakable text pieces; tool calls and results are appended to `history`.

    `instructions` apply to this reply only and are not kept in the history.
    """
    sources = {t.name: t.source for t in tools}  # the model does not know where a tool lives
    spoken = False
    for _ in range(MAX_TOOL_ROUNDS):
        messages = history + ([ChatMessage(Role.SYSTEM, instructions)] if instructions else [])
        buffer = SentenceBuffer(first=not spoken)
        calls: list[ToolCall] = []
        stats.llm_request_time = time.monotonic()
        async for chunk in trace.stream(llm, llm.chat(messages, tools)):
            if isinstance(chunk, TextDelta):
                if not stats.llm_ttft_ms:
                    stats.llm_ttft_ms = (time.monotonic() - stats.llm_request_time) * 1000
                for piece in buffer.push(chunk.text):
                    spoken = True
                    yield piece
            elif isinstance(chunk, ToolCall):
                if not stats.llm_ttft_ms:
                    stats.llm_ttft_ms = (time.monotonic() - stats.llm_request_time) * 1000
                calls.append(replace(chunk, source=sources.get(chunk.name, chunk.source)))
            elif isinstance(chunk, Usage):
                stats.input_tokens += chunk.input_tokens
                stats.output_tokens += chunk.output_tokens
        for piece in buffer.flush():
            spoken = True
            yield piece
        if not calls:
            return
        history.append(ChatMessage(Role.ASSISTANT, "", tool_calls=calls))  # spoken text joins the final message
        for call in calls:
            stats.tool_calls.append(call)
            outcome = await trace.tool(call, run_tool if call.name in sources else _unknown_tool(sources))
            history.append(ChatMessage(Role.TOOL, outcome.result, tool_call_id=call.id))


def _unknown_tool(known: Mapping[str, object]) -> ToolRunner:
    """A call of a tool the session does not have is answered to the model as an error (no client sees it)."""

    async def answer(call: ToolCall) -> ToolOutcome:
        names = ", ".join(sorted(known)) or "none"
        return ToolOutcome(f"error: there is no tool named {call.name[:64]!r}; the tools are: {names}", True)

    return answer
