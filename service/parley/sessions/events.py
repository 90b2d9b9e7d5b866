"""Session events and the per-session event bus that fans them out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from parley.chat import ToolCall
from parley.errors import ResourceExhausted
from parley.providers.base import Word
from parley.sessions.states import AgentState, UserState

if TYPE_CHECKING:
    from parley.sessions.metrics import TurnMetricsSnapshot
    from parley.sessions.utterance import UtteranceSnapshot


@dataclass(frozen=True)
class AgentStateChanged:
    old_state: AgentState
    new_state: AgentState


@dataclass(frozen=True)
class UserStateChanged:
    old_state: UserState
    new_state: UserState


@dataclass(frozen=True)
class TranscriptEvent:
    text: str
    is_final: bool
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class UtteranceUpdated:
    utterance: UtteranceSnapshot


@dataclass(frozen=True)
class AgentText:
    utterance_id: str
    text: str


@dataclass(frozen=True)
class ToolCallRequested:
    call: ToolCall
    timeout_seconds: float


@dataclass(frozen=True)
class ToolCallCompleted:
    call: ToolCall
    result: str
    is_error: bool


@dataclass(frozen=True)
class ClearAudio:
    utterance_id: str


@dataclass(frozen=True)
class Interruption:
    kind: str  # "interrupted" | "paused" | "resumed"
    utterance_id: str
    by_request: bool


@dataclass(frozen=True)
class WakeUp:
    idle_seconds: float


@dataclass(frozen=True)
class MetricsUpdated:
    turn: TurnMetricsSnapshot


@dataclass(frozen=True)
class FramesDropped:
    count: int
    total: int


@dataclass(frozen=True)
class SessionWarning:
    reason: str
    message: str
    utterance_id: str = ""


@dataclass(frozen=True)
class SessionClosed:
    reason: str


EventPayload = (
    AgentStateChanged
    | UserStateChanged
    | TranscriptEvent
    | UtteranceUpdated
    | AgentText
    | ToolCallRequested
    | ToolCallCompleted
    | ClearAudio
    | Interruption
    | WakeUp
    | MetricsUpdated
    | FramesDropped
    | SessionWarning
    | SessionClosed
)


@dataclass(frozen=True)
class SessionEvent:
    session: str
    sequence: int
    time: float  # seconds since the epoch
    payload: EventPayload


class Subscription:
    """One subscriber's bounded queue.

    Overflow policy: a subscriber that falls `limit` events behind is cut off
    (iteration raises ResourceExhausted) rather than silently losing events
    or growing without bound; other subscribers are not affected.
    """

    def __init__(self, bus: EventBus, limit: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[SessionEvent | None] = asyncio.Queue(limit)
        self.overflowed = False

    def offer(self, event: SessionEvent | None) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self._bus.unsubscribe(self)
            self._queue = asyncio.Queue(1)
            self._queue.put_nowait(None)

    def close(self) -> None:
        self._bus.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[SessionEvent]:
        try:
            while True:
                event = await self._queue.get()
                if event is None:
                    if self.overflowed:
                        raise ResourceExhausted("event_queue", "event subscriber fell too far behind and was cut off")
                    return
                yield event
        finally:
            self.close()


MAX_PINNED = 16


@dataclass
class EventBus:
    """Fans a session's events out to its subscribers and sinks. One per session.

    Subscribers (WatchEvents) each get a bounded queue; sinks (the attached
    audio stream's outbox) are called with each event as it is published.
    """

    session: str
    max_subscribers: int = 16
    subscriber_limit: int = 1000
    _sequence: int = 0
    _subscribers: list[Subscription] = field(default_factory=list)
    _sinks: list[Callable[[SessionEvent], None]] = field(default_factory=list)
    _pinned: list[SessionEvent] = field(default_factory=list)
    _closed: bool = False

    def subscribe(self) -> Subscription:
        if len(self._subscribers) >= self.max_subscribers:
            raise ResourceExhausted("max_subscribers", f"at most {self.max_subscribers} event subscribers per session")
        sub = Subscription(self, self.subscriber_limit)
        if self._closed:
            sub.offer(None)
        else:
            self._subscribers.append(sub)
            for event in self._pinned:
                sub.offer(event)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def add_sink(self, sink: Callable[[SessionEvent], None]) -> None:
        self._sinks.append(sink)
        for event in self._pinned:
            sink(event)

    def remove_sink(self, sink: Callable[[SessionEvent], None]) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def publish(self, payload: EventPayload) -> SessionEvent:
        self._sequence += 1
        event = SessionEvent(self.session, self._sequence, time.time(), payload)
        for sub in list(self._subscribers):
            sub.offer(event)
        for sink in self._sinks:
            sink(event)
        return event

    def pin(self, payload: EventPayload) -> SessionEvent:
        """Publish an event that every later subscriber and sink also gets first.

        For what happens while the session starts (an optional MCP server
        down): no one can watch a session before Start returns it. At most
        MAX_PINNED events are kept; later ones are only published.
        """
        event = self.publish(payload)
        if len(self._pinned) < MAX_PINNED:
            self._pinned.append(event)
        return event

    def close(self) -> None:
        """End every subscription after the events already queued."""
        self._closed = True
        for sub in list(self._subscribers):
            sub.offer(None)
        self._subscribers.clear()
        self._sinks.clear()

