"""Session events as readable text: what `parley talk` prints and the web page shows.

One line per event, `event <sequence> <kind> <details>`, where kind is the
field set in SessionEvent's `event` oneof and the details are plain words,
never protobuf text format.
"""

from __future__ import annotations

import json
import re
from typing import Any

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from parley.v1 import events_pb2, session_pb2


def short(enum: EnumTypeWrapper, value: int) -> str:
    """AGENT_STATE_IDLE -> idle."""
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.DESCRIPTOR.name).upper() + "_"
    return enum.Name(value).removeprefix(prefix).lower()


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def _utterance(u: session_pb2.Utterance) -> str:
    text = (f"{u.id} {short(session_pb2.UtteranceSource, u.source)} "
            f"{short(session_pb2.UtteranceState, u.state)} {u.text!r}")
    if u.state == session_pb2.UTTERANCE_STATE_INTERRUPTED:
        text += f" heard {u.heard_text!r}"
    if u.end_reason:
        text += f" ({u.end_reason})"
    if u.error:
        text += f" error {u.error!r}"
    return text


def _tool_call(call: session_pb2.ToolCall) -> str:
    try:
        arguments = json.dumps(json.loads(call.arguments_json or "{}"), ensure_ascii=False)
    except json.JSONDecodeError:
        arguments = call.arguments_json
    return f"{call.name}({arguments}) id {call.id} {short(session_pb2.ToolSource, call.source)}"


def _metrics(turn: session_pb2.TurnMetrics) -> str:
    parts = [("end of turn", turn.end_of_turn_delay_ms), ("stt", turn.stt_latency_ms),
             ("llm first token", turn.llm_ttft_ms), ("tts first audio", turn.tts_ttfb_ms),
             ("end to end", turn.e2e_latency_ms)]
    return ", ".join(f"{name} {_ms(value)}" for name, value in parts if value)


def details(event: events_pb2.SessionEvent) -> str:
    """The event's details in plain words."""
    kind = event.WhichOneof("event")
    if kind is None:
        return ""
    body: Any = getattr(event, kind)
    if kind == "agent_state_changed":
        return f"{short(session_pb2.AgentState, body.old_state)} -> {short(session_pb2.AgentState, body.new_state)}"
    if kind == "user_state_changed":
        return f"{short(session_pb2.UserState, body.old_state)} -> {short(session_pb2.UserState, body.new_state)}"
    if kind == "transcript":
        return f"{'final' if body.is_final else 'interim'} {body.text!r}"
    if kind == "utterance_updated":
        return _utterance(body.utterance)
    if kind == "agent_text":
        return f"{body.utterance_id} {body.text!r}"
    if kind == "tool_call_requested":
        return f"{_tool_call(body.call)}, answer within {body.timeout_seconds:g} s"
    if kind == "tool_call_completed":
        outcome = "error" if body.is_error else "result"
        return f"{_tool_call(body.call)} {outcome} {body.result!r}"
    if kind == "clear_audio":
        return f"drop buffered audio of {body.utterance_id}"
    if kind == "interruption":
        by = "by request" if body.by_request else "by the caller's voice"
        return f"{short(events_pb2.InterruptionKind, body.kind)} {body.utterance_id} {by}"
    if kind == "wake_up":
        return f"after {body.idle_seconds:.1f} s idle"
    if kind == "metrics_updated":
        return _metrics(body.turn)
    if kind == "frames_dropped":
        return f"{body.count} frames dropped ({body.total} since the stream attached)"
    if kind == "warning":
        concerning = f" ({body.utterance_id})" if body.utterance_id else ""
        return f"{body.reason}: {body.message}{concerning}"
    if kind == "session_closed":
        return repr(body.reason)
    return ""


def line(event: events_pb2.SessionEvent) -> str:
    """`event <sequence> <kind> <details>`."""
    return f"event {event.sequence} {event.WhichOneof('event')} {details(event)}"
