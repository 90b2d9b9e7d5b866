"""The values a session is made with and shows: embedder hooks, snapshots, busy policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from parley.chat import ChatMessage, ToolSpec
from parley.sessions.config import SessionConfig
from parley.sessions.layers import LayerStatus
from parley.sessions.metrics import SessionMetricsSnapshot
from parley.sessions.states import AgentState, SessionStatus, UserState
from parley.sessions.utterance import UtteranceSnapshot


class BusyPolicy(Enum):
    QUEUE = 1
    INTERRUPT = 2
    REJECT = 3


@dataclass
class SessionHooks:
    """Embedder callbacks on speech in and speech out.

    Text hooks are async and may return a replacement text (None keeps it).
    Audio hooks run on the real-time path, so they are plain functions that
    must be quick; they may return a replacement int16 array (None keeps it).
    """

    on_user_audio: Callable[[np.ndarray], np.ndarray | None] | None = None
    on_user_transcript: Callable[[str], Awaitable[str | None]] | None = None
    on_agent_text: Callable[[str], Awaitable[str | None]] | None = None
    on_agent_audio: Callable[[np.ndarray], np.ndarray | None] | None = None


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
    tools: tuple[ToolSpec, ...]
    audio_stream_attached: bool
    background_audio: LayerStatus
    thinking_audio: LayerStatus
