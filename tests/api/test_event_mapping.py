"""Every engine event reaches clients as its own message: none becomes an empty event."""

from __future__ import annotations

import typing

from parley.api.converters import event_to_proto
from parley.chat import ToolCall
from parley.sessions import events as ev
from parley.sessions.metrics import TurnMetricsSnapshot
from parley.sessions.states import AgentState, UserState, UtteranceSource, UtteranceState
from parley.sessions.utterance import UtteranceSnapshot

CALL = ToolCall("call_1", "lookup", "{}")
SAMPLES: dict[type, object] = {
    ev.AgentStateChanged: ev.AgentStateChanged(AgentState.IDLE, AgentState.SPEAKING),
    ev.UserStateChanged: ev.UserStateChanged(UserState.LISTENING, UserState.SPEAKING),
    ev.TranscriptEvent: ev.TranscriptEvent("hello", True),
    ev.UtteranceUpdated: ev.UtteranceUpdated(UtteranceSnapshot(
        "u1", UtteranceState.PLAYED, UtteranceSource.SAY, "hi", "hi", True, 300, "", "", 1.0, 1.0, 2.0)),
    ev.AgentText: ev.AgentText("u1", "hi"),
    ev.ToolCallRequested: ev.ToolCallRequested(CALL, 5.0),
    ev.ToolCallCompleted: ev.ToolCallCompleted(CALL, "ok", False),
    ev.ClearAudio: ev.ClearAudio("u1"),
    ev.Interruption: ev.Interruption("paused", "u1", False),
    ev.WakeUp: ev.WakeUp(3.0),
    ev.MetricsUpdated: ev.MetricsUpdated(TurnMetricsSnapshot(e2e_latency_ms=700.0)),
    ev.FramesDropped: ev.FramesDropped(3, 10),
    ev.SessionWarning: ev.SessionWarning("LLM_FAILED", "the model failed"),
    ev.SessionClosed: ev.SessionClosed("done"),
}


def test_every_event_type_maps_to_its_own_message() -> None:
    kinds = typing.get_args(ev.EventPayload)
    assert set(kinds) == set(SAMPLES), "a new event type needs a sample here (and a mapping in event_to_proto)"
    seen = set()
    for kind in kinds:
        message = event_to_proto(ev.SessionEvent("sessions/x", 1, 0.0, SAMPLES[kind]))  # type: ignore[arg-type]
        field = message.WhichOneof("event")
        assert field is not None, kind
        seen.add(field)
    assert len(seen) == len(kinds)  # no two event types share a message
