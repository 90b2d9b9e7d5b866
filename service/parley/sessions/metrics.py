"""Per-session latency and counter bookkeeping (no OpenTelemetry here)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class TurnMetricsSnapshot:
    """Milliseconds; 0 means not measured for that turn."""

    end_of_turn_delay_ms: float = 0.0
    stt_latency_ms: float = 0.0
    llm_ttft_ms: float = 0.0
    tts_ttfb_ms: float = 0.0
    e2e_latency_ms: float = 0.0


@dataclass(frozen=True)
class SessionMetricsSnapshot:
    last_turn: TurnMetricsSnapshot
    mean: TurnMetricsSnapshot
    turns: int
    interruptions: int
    false_interruptions: int
    frames_dropped: int
    underruns: int
    duration_seconds: float


@dataclass
class SessionMetrics:
    """Counters and turn latencies of one session; the mean is over the last `max_turns_kept` turns."""

    turns: list[TurnMetricsSnapshot] = field(default_factory=list)
    turn_count: int = 0
    interruptions: int = 0
    false_interruptions: int = 0
    frames_dropped: int = 0
    underruns: int = 0
    max_turns_kept: int = 100

    def add_turn(self, turn: TurnMetricsSnapshot) -> None:
        self.turns.append(turn)
        self.turn_count += 1
        del self.turns[: -self.max_turns_kept]

    def snapshot(self, duration_seconds: float) -> SessionMetricsSnapshot:
        return SessionMetricsSnapshot(
            last_turn=self.turns[-1] if self.turns else TurnMetricsSnapshot(),
            mean=self._mean(),
            turns=self.turn_count,
            interruptions=self.interruptions,
            false_interruptions=self.false_interruptions,
            frames_dropped=self.frames_dropped,
            underruns=self.underruns,
            duration_seconds=duration_seconds,
        )

    def _mean(self) -> TurnMetricsSnapshot:
        means = {}
        for f in fields(TurnMetricsSnapshot):
            values = [getattr(t, f.name) for t in self.turns if getattr(t, f.name) > 0]
            means[f.name] = sum(values) / len(values) if values else 0.0
        return TurnMetricsSnapshot(**means)
