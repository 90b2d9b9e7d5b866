"""State enums of sessions, agents, users and utterances (names match the contract)."""

from __future__ import annotations

from enum import Enum


class AgentState(Enum):
    STARTING = 1
    IDLE = 2
    LISTENING = 3
    THINKING = 4
    SPEAKING = 5
    CLOSING = 6


class UserState(Enum):
    IDLE = 1
    LISTENING = 2
    SPEAKING = 3


class SessionStatus(Enum):
    ACTIVE = 1
    CLOSED = 2


class UtteranceState(Enum):
    QUEUED = 1
    SPEAKING = 2
    PLAYED = 3
    INTERRUPTED = 4
    FAILED = 5

    @property
    def final(self) -> bool:
        return self in (UtteranceState.PLAYED, UtteranceState.INTERRUPTED, UtteranceState.FAILED)


class UtteranceSource(Enum):
    SAY = 1
    REPLY = 2
    WAKE_UP = 3
    GREETING = 4
    FAREWELL = 5
