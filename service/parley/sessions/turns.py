"""The caller's turns and the replies that answer them, with each turn's latencies.

A reply to a caller turn is pending until its first frame plays; then the
turn's figures are complete (end of turn, recognizer, model first token,
synthesis first byte, and the end-to-end time from the end of the caller's
voice to that first frame) and are published once.
"""

from __future__ import annotations

from dataclasses import dataclass

from parley.sessions import events as ev
from parley.sessions.clock import Clock
from parley.sessions.listener import UserTurn
from parley.sessions.metrics import SessionMetrics, TurnMetricsSnapshot
from parley.sessions.replies import ReplyStats


@dataclass
class PendingTurn:
    user: UserTurn
    stats: ReplyStats
    tts_ttfb_ms: float = 0.0


class Turns:
    def __init__(self, clock: Clock, metrics: SessionMetrics, bus: ev.EventBus) -> None:
        self._clock = clock
        self._metrics = metrics
        self._bus = bus
        self._pending: dict[str, PendingTurn] = {}  # by the id of the reply that answers it

    def answered_by(self, utterance_id: str, turn: PendingTurn) -> None:
        self._pending[utterance_id] = turn

    def answers_a_turn(self, utterance_id: str) -> bool:
        return utterance_id in self._pending

    def unheard_replies(self) -> set[str]:
        """Replies to caller turns whose first frame has not played yet."""
        return set(self._pending)

    def first_byte(self, utterance_id: str, ms: float) -> None:
        pending = self._pending.get(utterance_id)
        if pending is not None and not pending.tts_ttfb_ms:
            pending.tts_ttfb_ms = ms

    def speech_started(self, utterance_id: str) -> TurnMetricsSnapshot | None:
        """The reply's first frame played: the turn's figures are complete."""
        pending = self._pending.pop(utterance_id, None)
        if pending is None:
            return None
        turn = TurnMetricsSnapshot(
            end_of_turn_delay_ms=pending.user.end_of_turn_delay_ms,
            stt_latency_ms=pending.user.stt_latency_ms,
            llm_ttft_ms=pending.stats.llm_ttft_ms,
            tts_ttfb_ms=pending.tts_ttfb_ms,
            e2e_latency_ms=(self._clock.now() - pending.user.speech_end) * 1000,
        )
        self._metrics.add_turn(turn)
        self._bus.publish(ev.MetricsUpdated(turn))
        return turn

    def forget(self, utterance_id: str) -> None:
        self._pending.pop(utterance_id, None)
