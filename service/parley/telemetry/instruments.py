"""The server's OTLP instruments: per-turn latencies, interruptions, frames, sessions, streams.

Durations are in seconds, as OpenTelemetry's conventions ask. No instrument
carries a per-session attribute: the number of series stays fixed however
many sessions come and go (per-session figures are in Get).
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from parley.sessions.metrics import TurnMetricsSnapshot
from parley.sessions.stream_slots import StreamSlots

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
SESSION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

# TurnMetricsSnapshot field -> (instrument name, description)
TURN_LATENCIES = {
    "end_of_turn_delay_ms": ("parley.turn.end_of_turn_delay", "user speech end to the end of the turn"),
    "stt_latency_ms": ("parley.turn.stt_latency", "user speech end to the final transcript"),
    "llm_ttft_ms": ("parley.turn.llm_time_to_first_token", "language model request to its first token"),
    "tts_ttfb_ms": ("parley.turn.tts_time_to_first_byte", "synthesis request to its first audio"),
    "e2e_latency_ms": ("parley.turn.e2e_latency", "user speech end to the first agent frame out of the mixer"),
}


class Instruments:
    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self.turn = {
            field: meter.create_histogram(name, unit="s", description=description,
                                          explicit_bucket_boundaries_advisory=LATENCY_BUCKETS)
            for field, (name, description) in TURN_LATENCIES.items()
        }
        self.interruptions = meter.create_counter(
            "parley.interruptions", unit="{interruption}", description="agent speech cut by the caller or a call")
        self.false_interruptions = meter.create_counter(
            "parley.false_interruptions", unit="{interruption}",
            description="caller noise that paused agent speech without words following")
        self.frames_dropped = meter.create_counter(
            "parley.frames.dropped", unit="{frame}", description="frames dropped for a stream that fell behind")
        self.underruns = meter.create_counter(
            "parley.frames.underruns", unit="{frame}", description="frames mixed more than one period late")
        self.active_sessions = meter.create_up_down_counter(
            "parley.sessions.active", unit="{session}", description="sessions open now")
        self.session_duration = meter.create_histogram(
            "parley.session.duration", unit="s", description="from Start to Close",
            explicit_bucket_boundaries_advisory=SESSION_BUCKETS)

    def watch_streams(self, slots: StreamSlots) -> None:
        """Report the streams `slots` carries and has refused, read when the metrics are collected."""
        def carried(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(slots.in_use)]

        def refused(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(slots.refused)]

        def limit(_: CallbackOptions) -> Iterable[Observation]:
            return [] if slots.limit is None else [Observation(slots.limit)]

        self._meter.create_observable_up_down_counter(
            "parley.streams.active", [carried], unit="{stream}",
            description="audio streams carried now, sessions in their reattach window included (max_streams)")
        self._meter.create_observable_counter(
            "parley.streams.refused", [refused], unit="{stream}",
            description="StreamAudio calls refused at max_streams")
        self._meter.create_observable_gauge(
            "parley.streams.limit", [limit], unit="{stream}",
            description="max_streams: at parley.streams.active == this, new streams are refused and the "
                        "Start-only listener is closed")

    def record_turn(self, turn: TurnMetricsSnapshot) -> None:
        """Each measured latency of a turn (0 means not measured and is skipped)."""
        for field, histogram in self.turn.items():
            value = getattr(turn, field)
            if value > 0:
                histogram.record(value / 1000)
