"""What a session tells an observer (telemetry) about itself: the hooks, and the "nobody listens" default.

The engine calls these hooks at moments it already has (an utterance queued,
its first frame out of the mixer, its end, a user turn ended, an
interruption). The base classes here do nothing, so a session nobody
observes pays one empty method call per hook. `parley.telemetry` implements
them with spans and metrics; the engine never imports it: the server (or an
embedder) hands the registry an `ObserverFactory`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from parley.chat import ToolCall
from parley.providers.base import LLM, LLMChunk
from parley.sessions.metrics import TurnMetricsSnapshot

if TYPE_CHECKING:
    from parley.sessions.listener import UserTurn
    from parley.sessions.tools import ToolOutcome
    from parley.sessions.utterance import Utterance


@dataclass(frozen=True)
class SessionDescription:
    """What an observer needs to know of a session: its name and the providers it runs on."""

    name: str
    stt: str
    tts: str
    voice: str
    vad: str
    turn_detector: str
    llm: str
    llm_model: str
    stt_model: str = ""
    tts_model: str = ""
    labels: dict[str, str] = field(default_factory=dict)


class ReplyObserver:
    """Where a reply's model rounds and tool calls are observed; this base class does nothing."""

    def stream(self, llm: LLM, chunks: AsyncIterator[LLMChunk]) -> AsyncIterator[LLMChunk]:
        """One model round's chunks, passed through."""
        return chunks

    async def tool(self, call: ToolCall, run: Callable[[ToolCall], Awaitable[ToolOutcome]]) -> ToolOutcome:
        return await run(call)


NO_REPLY_OBSERVER = ReplyObserver()


class SessionObserver:
    """The hooks the engine calls; this base class observes nothing."""

    def agent_turn(self, utterance: Utterance, *, answers_user: bool) -> None:
        return None

    def reply(self, utterance: Utterance) -> ReplyObserver:
        return NO_REPLY_OBSERVER

    def tts_first_byte(self, utterance: Utterance, ms: float) -> None:
        return None

    def synthesis_finished(self, utterance: Utterance) -> None:
        return None

    def speech_started(self, utterance: Utterance, turn: TurnMetricsSnapshot | None) -> None:
        return None

    def speech_finished(self, utterance: Utterance) -> None:
        return None

    def interrupted(self, utterance: Utterance, by_request: bool) -> None:
        return None

    def false_interruption(self, utterance: Utterance | None) -> None:
        return None

    def user_speech_started(self) -> None:
        return None

    def user_turn(self, turn: UserTurn) -> None:
        return None

    def frames_dropped(self, count: int) -> None:
        return None

    def underruns(self, count: int) -> None:
        return None

    def close(self, reason: str, duration_seconds: float) -> None:
        return None


NO_OBSERVER = SessionObserver()


class ObserverFactory(Protocol):
    """Opens one observer per session (the server's telemetry, or an embedder's own)."""

    def open_session(self, session: SessionDescription) -> SessionObserver: ...


class NoObservers:
    def open_session(self, session: SessionDescription) -> SessionObserver:
        return NO_OBSERVER
