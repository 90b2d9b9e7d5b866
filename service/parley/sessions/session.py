"""One agent session: its state, its event bus, its lifecycle."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from parley.chat import ChatMessage, Role
from parley.errors import FailedPrecondition
from parley.logs import SessionLogger
from parley.sessions.config import SessionConfig
from parley.sessions.events import AgentStateChanged, EventBus, SessionClosed, UserStateChanged
from parley.sessions.metrics import SessionMetrics, SessionMetricsSnapshot
from parley.sessions.states import AgentState, SessionStatus, UserState
from parley.sessions.utterance import UtteranceSnapshot

log = logging.getLogger("parley.session")


@dataclass(frozen=True)
class SessionSnapshot:
    name: str
    owner: str
    config: SessionConfig
    status: SessionStatus
    agent_state: AgentState
    user_state: UserState
    create_time: float
    close_time: float | None
    close_reason: str
    utterances: tuple[UtteranceSnapshot, ...]
    chat_history: tuple[ChatMessage, ...]
    metrics: SessionMetricsSnapshot
    audio_stream_attached: bool


class Session:
    """Server-side state of one agent session.

    Everything a session owns (event bus, metrics, tasks) lives on the
    instance; `close()` releases all of it and is idempotent.
    """

    def __init__(self, name: str, owner: str, config: SessionConfig, *, idle_ttl_seconds: float) -> None:
        self.name = name
        self.owner = owner
        self.config = config
        self.idle_ttl_seconds = idle_ttl_seconds
        self.status = SessionStatus.ACTIVE
        self.agent_state = AgentState.STARTING
        self.user_state = UserState.IDLE
        self.create_time = time.time()
        self.close_time: float | None = None
        self.close_reason = ""
        self.bus = EventBus(name)
        self.metrics = SessionMetrics()
        self.chat_history: list[ChatMessage] = []
        if config.instructions:
            self.chat_history.append(ChatMessage(Role.SYSTEM, config.instructions))
        self._started_at = time.monotonic()
        self.last_activity = self._started_at
        self._closing: asyncio.Task[None] | None = None
        self.log = SessionLogger(log, {"session": name})

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        self.set_agent_state(AgentState.IDLE)
        self.log.info("session started")

    async def close(self, reason: str = "closed by client") -> None:
        """End the session; concurrent and repeated calls wait for the same close."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(reason))
        await asyncio.shield(self._closing)

    async def _close(self, reason: str) -> None:
        self.set_agent_state(AgentState.CLOSING)
        self.status = SessionStatus.CLOSED
        self.close_time = time.time()
        self.close_reason = reason
        self.bus.publish(SessionClosed(reason))
        self.bus.close()
        self.log.info("session closed", extra={"reason": reason})

    @property
    def closed(self) -> bool:
        return self.status is SessionStatus.CLOSED or self._closing is not None

    def ensure_active(self) -> None:
        if self.closed:
            raise FailedPrecondition(f"{self.name} is closed", reason="SESSION_CLOSED")

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def reapable(self, now: float) -> bool:
        """Idle past its TTL: no call and no attached audio stream for that long."""
        return now - self.last_activity > self.idle_ttl_seconds

    # -- state -----------------------------------------------------------

    def set_agent_state(self, state: AgentState) -> None:
        if state is not self.agent_state:
            old, self.agent_state = self.agent_state, state
            self.bus.publish(AgentStateChanged(old, state))

    def set_user_state(self, state: UserState) -> None:
        if state is not self.user_state:
            old, self.user_state = self.user_state, state
            self.bus.publish(UserStateChanged(old, state))

    # -- views -----------------------------------------------------------

    def snapshot(self, *, full: bool = True) -> SessionSnapshot:
        end = self.close_time if self.close_time is not None else time.time()
        return SessionSnapshot(
            name=self.name,
            owner=self.owner,
            config=self.config,
            status=self.status,
            agent_state=self.agent_state,
            user_state=self.user_state,
            create_time=self.create_time,
            close_time=self.close_time,
            close_reason=self.close_reason,
            utterances=(),
            chat_history=tuple(self.chat_history) if full else (),
            metrics=self.metrics.snapshot(end - self.create_time),
            audio_stream_attached=False,
        )
