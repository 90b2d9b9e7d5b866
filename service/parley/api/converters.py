"""The one place where protobuf messages and engine types meet.

Over 400 lines on purpose: one function per message kind, both ways, kept
together so that a field added to the contract has one place to go.
"""

from __future__ import annotations

import hashlib
from typing import Any, assert_never

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from parley.audio.encodings import G711_RATE, Encoding
from parley.chat import ChatMessage, Role, ToolCall, ToolSource, ToolSpec
from parley.errors import InvalidArgument
from parley.providers import registry as providers
from parley.sessions import config as cfg
from parley.sessions import events as ev
from parley.sessions.layers import LayerStatus
from parley.sessions.metrics import SessionMetricsSnapshot, TurnMetricsSnapshot
from parley.sessions.recording import RecordingInfo
from parley.sessions.session_types import SessionSnapshot
from parley.sessions.states import AgentState, UserState
from parley.sessions.stream import OutFrame, StreamSpec
from parley.sessions.utterance import UtteranceSnapshot
from parley.v1 import agent_session_service_pb2, audio_pb2, events_pb2, session_pb2

# -- helpers ----------------------------------------------------------------


def request_fingerprint(request: Any) -> bytes | None:
    """What identifies a request for idempotency: a hash of its fields but request_id (map order ignored).

    None without a request_id: such a request is never compared with another, so it is not hashed.
    """
    if not request.request_id:
        return None
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()


def enum_from_proto(enum_cls: Any, proto_enum: Any, value: int, field: str, default: Any) -> Any:
    """Proto enum number -> engine enum member; UNSPECIFIED -> default; unknown numbers rejected."""
    if value == 0:
        return default
    try:
        label = proto_enum.Name(value)
    except ValueError:
        raise InvalidArgument(field, f"unknown enum value {value}") from None
    return enum_cls[label.removeprefix(_enum_prefix(proto_enum))]


def enum_to_proto(proto_enum: Any, member: Any) -> Any:  # the stubs type enum fields as their wrapper
    return proto_enum.Value(_enum_prefix(proto_enum) + member.name)


def _enum_prefix(proto_enum: Any) -> str:
    return proto_enum.DESCRIPTOR.values[0].name.removesuffix("UNSPECIFIED")


def timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(struct)


def dict_to_struct(data: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


# -- config: proto -> engine ------------------------------------------------


def _opt(message: Any, field: str, default: Any) -> Any:
    return getattr(message, field) if message.HasField(field) else default


def _provider(spec: session_pb2.ProviderSpec) -> cfg.ProviderChoice:
    return cfg.ProviderChoice(spec.name, struct_to_dict(spec.options))


def action_from_proto(action: session_pb2.AgentAction, present: bool) -> cfg.AgentAction | None:
    if not present:
        return None
    which = action.WhichOneof("action")
    return cfg.AgentAction(
        say_text=action.say_text if which == "say_text" else None,
        reply_instructions=action.reply_instructions if which == "reply_instructions" else None,
    )


def layer_from_proto(layer: session_pb2.AudioLayerConfig, field: str) -> cfg.AudioLayerConfig:
    d = cfg.AudioLayerConfig()
    return cfg.AudioLayerConfig(
        source=layer.source,
        gain=layer.gain if layer.gain != 0 else None,
        looping=_opt(layer, "looping", d.looping),
        mode=enum_from_proto(cfg.LayerMode, session_pb2.LayerMode, layer.mode, f"{field}.mode", d.mode),
        fade_in_ms=_opt(layer, "fade_in_ms", d.fade_in_ms),
        fade_out_ms=_opt(layer, "fade_out_ms", d.fade_out_ms),
    )


def encoding_from_proto(fmt: audio_pb2.AudioFormat, field: str) -> Encoding:
    return enum_from_proto(Encoding, audio_pb2.AudioEncoding, fmt.encoding, f"{field}.encoding", Encoding.LINEAR16)


def _rate(fmt: audio_pb2.AudioFormat, encoding: Encoding, default_rate: int) -> int:
    """The format's rate; 0 picks G.711's only rate, else `default_rate`."""
    return fmt.sample_rate_hz or (G711_RATE if encoding.telephone else default_rate)


def output_format_from_proto(fmt: audio_pb2.AudioFormat, default_rate: int, field: str) -> cfg.AudioFormat:
    encoding = encoding_from_proto(fmt, field)
    return cfg.AudioFormat(
        sample_rate_hz=_rate(fmt, encoding, default_rate), channels=fmt.channels or 1, frame_ms=fmt.frame_ms or 20,
        encoding=encoding,
    )


def tool_from_proto(tool: session_pb2.ToolDefinition) -> ToolSpec:
    params = struct_to_dict(tool.parameters) if tool.HasField("parameters") else {"type": "object", "properties": {}}
    return ToolSpec(tool.name, tool.description, params, ToolSource.CLIENT)


def mcp_from_proto(server: session_pb2.McpServerConfig) -> cfg.McpServerConfig:
    stdio = None
    if server.WhichOneof("transport") == "stdio":
        stdio = cfg.McpStdioCommand(server.stdio.command, tuple(server.stdio.args), dict(server.stdio.env))
    return cfg.McpServerConfig(
        name=server.name,
        url=server.url,
        stdio=stdio,
        headers=dict(server.headers),
        optional=server.optional,
        call_timeout_seconds=server.call_timeout_seconds or 10.0,
    )


def config_from_proto(message: session_pb2.SessionConfig, field: str = "config") -> cfg.SessionConfig:
    """Proto config -> engine config; unset fields take the engine's defaults."""
    i, di = message.interruption, cfg.InterruptionConfig()
    t, dt = message.turn_detection, cfg.TurnDetectionConfig()
    b, th = message.background_audio, message.thinking_audio
    p = message.providers
    return cfg.SessionConfig(
        instructions=message.instructions,
        providers=cfg.ProvidersConfig(
            stt=_provider(p.stt), tts=_provider(p.tts), llm=_provider(p.llm), vad=_provider(p.vad),
            turn_detector=_provider(p.turn_detector),
        ),
        voice=message.voice,
        interruption=cfg.InterruptionConfig(
            mode=enum_from_proto(
                cfg.InterruptionMode, session_pb2.InterruptionMode, i.mode, f"{field}.interruption.mode", di.mode
            ),
            min_duration_seconds=_opt(i, "min_duration_seconds", di.min_duration_seconds),
            min_words=_opt(i, "min_words", di.min_words),
            false_interruption_pause_seconds=_opt(
                i, "false_interruption_pause_seconds", di.false_interruption_pause_seconds
            ),
            resume_on_false_interruption=_opt(i, "resume_on_false_interruption", di.resume_on_false_interruption),
        ),
        turn_detection=cfg.TurnDetectionConfig(
            min_endpointing_delay_seconds=_opt(t, "min_endpointing_delay_seconds", dt.min_endpointing_delay_seconds),
            max_endpointing_delay_seconds=_opt(t, "max_endpointing_delay_seconds", dt.max_endpointing_delay_seconds),
        ),
        wake_up=cfg.WakeUpConfig(
            after_seconds=message.wake_up.after_seconds,
            action=action_from_proto(message.wake_up.action, message.wake_up.HasField("action")),
        ),
        background_audio=cfg.BackgroundAudioConfig(
            layer=layer_from_proto(b.layer, f"{field}.background_audio.layer"),
            play_on_start=b.play_on_start,
            override_thinking=b.override_thinking,
            duck_db=b.duck_db,
        ),
        thinking_audio=cfg.ThinkingAudioConfig(
            layer=layer_from_proto(th.layer, f"{field}.thinking_audio.layer"),
            auto=th.auto,
            layer_over_background=th.layer_over_background,
        ),
        tools=tuple(tool_from_proto(tool) for tool in message.tools),
        tool_timeout_seconds=message.tool_timeout_seconds or 30.0,
        mcp_servers=tuple(mcp_from_proto(s) for s in message.mcp_servers),
        output_format=output_format_from_proto(message.output_format, 24000, f"{field}.output_format"),
        idle_ttl_seconds=message.idle_ttl_seconds or None,
        labels=dict(message.labels),
        greeting=action_from_proto(message.greeting, message.HasField("greeting")),
        reattach_window_seconds=message.reattach_window_seconds,
        auto_reply=_opt(message, "auto_reply", True),
        recording=cfg.RecordingConfig(enabled=message.recording.enabled),
    )


def farewell_from_proto(request: agent_session_service_pb2.CloseRequest) -> tuple[cfg.AgentAction, float] | None:
    if not request.HasField("farewell"):
        return None
    farewell = request.farewell
    action = action_from_proto(farewell.action, farewell.HasField("action"))
    if action is None:
        raise InvalidArgument("farewell.action", "set say_text or reply_instructions")
    cfg.check_action(action, "farewell.action")
    timeout = farewell.timeout_seconds or 10.0
    cfg.check_seconds(timeout, "farewell.timeout_seconds", maximum=120, allow_zero=False)
    return action, timeout


def interrupt_scope_from_proto(scope: int) -> bool:
    """True when the interrupt also drops queued utterances."""
    known = (0, agent_session_service_pb2.INTERRUPT_SCOPE_CURRENT, agent_session_service_pb2.INTERRUPT_SCOPE_ALL)
    if scope not in known:
        raise InvalidArgument("scope", f"unknown enum value {scope}")
    return scope == agent_session_service_pb2.INTERRUPT_SCOPE_ALL


def stream_spec_from_proto(
    config: agent_session_service_pb2.StreamConfig, session_output: cfg.AudioFormat
) -> StreamSpec:
    fmt_in = config.input_format
    input_encoding = encoding_from_proto(fmt_in, "config.input_format")
    if config.HasField("output_format"):
        output = output_format_from_proto(config.output_format, session_output.sample_rate_hz, "config.output_format")
        cfg.check_output_format(output, "config.output_format")
    else:
        output = session_output
    return StreamSpec(
        input_rate=_rate(fmt_in, input_encoding, 16000), input_channels=fmt_in.channels or 1, output=output,
        lead_ms=config.lead_ms, input_encoding=input_encoding,
    )


# -- config: engine -> proto ------------------------------------------------


def _action_to_proto(action: cfg.AgentAction | None) -> session_pb2.AgentAction | None:
    if action is None:
        return None
    if action.say_text is not None:
        return session_pb2.AgentAction(say_text=action.say_text)
    return session_pb2.AgentAction(reply_instructions=action.reply_instructions or "")


def _layer_to_proto(layer: cfg.AudioLayerConfig) -> session_pb2.AudioLayerConfig:
    return session_pb2.AudioLayerConfig(
        source=layer.source, gain=layer.gain or 0.0, looping=layer.looping,
        mode=enum_to_proto(session_pb2.LayerMode, layer.mode), fade_in_ms=layer.fade_in_ms,
        fade_out_ms=layer.fade_out_ms,
    )


def config_to_proto(config: cfg.SessionConfig, idle_ttl_seconds: float) -> session_pb2.SessionConfig:
    p = config.providers

    def spec(stage: str) -> session_pb2.ProviderSpec:
        choice = getattr(p, stage)
        return session_pb2.ProviderSpec(
            name=choice.name, options=dict_to_struct(providers.shown_options(stage, choice.name, choice.options)))

    i, t = config.interruption, config.turn_detection
    return session_pb2.SessionConfig(
        instructions=config.instructions,
        providers=session_pb2.ProvidersConfig(
            stt=spec("stt"), tts=spec("tts"), llm=spec("llm"), vad=spec("vad"), turn_detector=spec("turn_detector")
        ),
        voice=config.voice,
        interruption=session_pb2.InterruptionConfig(
            mode=enum_to_proto(session_pb2.InterruptionMode, i.mode),
            min_duration_seconds=i.min_duration_seconds,
            min_words=i.min_words,
            false_interruption_pause_seconds=i.false_interruption_pause_seconds,
            resume_on_false_interruption=i.resume_on_false_interruption,
        ),
        turn_detection=session_pb2.TurnDetectionConfig(
            min_endpointing_delay_seconds=t.min_endpointing_delay_seconds,
            max_endpointing_delay_seconds=t.max_endpointing_delay_seconds,
        ),
        wake_up=session_pb2.WakeUpConfig(
            after_seconds=config.wake_up.after_seconds, action=_action_to_proto(config.wake_up.action)
        ),
        background_audio=session_pb2.BackgroundAudioConfig(
            layer=_layer_to_proto(config.background_audio.layer),
            play_on_start=config.background_audio.play_on_start,
            override_thinking=config.background_audio.override_thinking,
            duck_db=config.background_audio.duck_db,
        ),
        thinking_audio=session_pb2.ThinkingAudioConfig(
            layer=_layer_to_proto(config.thinking_audio.layer),
            auto=config.thinking_audio.auto,
            layer_over_background=config.thinking_audio.layer_over_background,
        ),
        tools=[
            session_pb2.ToolDefinition(name=t.name, description=t.description, parameters=dict_to_struct(t.parameters))
            for t in config.tools
        ],
        tool_timeout_seconds=config.tool_timeout_seconds,
        mcp_servers=[_mcp_to_proto(s) for s in config.mcp_servers],
        output_format=audio_pb2.AudioFormat(
            encoding=enum_to_proto(audio_pb2.AudioEncoding, config.output_format.encoding),
            sample_rate_hz=config.output_format.sample_rate_hz,
            channels=config.output_format.channels,
            frame_ms=config.output_format.frame_ms,
        ),
        idle_ttl_seconds=idle_ttl_seconds,
        labels=config.labels,
        greeting=_action_to_proto(config.greeting),
        reattach_window_seconds=config.reattach_window_seconds,
        auto_reply=config.auto_reply,
        recording=session_pb2.RecordingConfig(enabled=config.recording.enabled),
    )


def _mcp_to_proto(server: cfg.McpServerConfig) -> session_pb2.McpServerConfig:
    message = session_pb2.McpServerConfig(
        name=server.name, headers={k: "<redacted>" for k in server.headers}, optional=server.optional,
        call_timeout_seconds=server.call_timeout_seconds,
    )
    if server.stdio is not None:
        message.stdio.CopyFrom(session_pb2.McpStdioCommand(command=server.stdio.command, args=server.stdio.args))
    else:
        message.url = server.url
    return message


# -- snapshots: engine -> proto ------------------------------------------------


def utterance_to_proto(u: UtteranceSnapshot) -> session_pb2.Utterance:
    return session_pb2.Utterance(
        id=u.id,
        state=enum_to_proto(session_pb2.UtteranceState, u.state),
        source=enum_to_proto(session_pb2.UtteranceSource, u.source),
        text=u.text,
        heard_text=u.heard_text,
        interruptible=u.interruptible,
        played_ms=u.played_ms,
        error=u.error,
        end_reason=u.end_reason,
        create_time=timestamp(u.create_time),
        start_time=timestamp(u.start_time),
        end_time=timestamp(u.end_time),
    )


def tool_call_to_proto(call: ToolCall) -> session_pb2.ToolCall:
    return session_pb2.ToolCall(
        id=call.id, name=call.name, arguments_json=call.arguments_json,
        source=enum_to_proto(session_pb2.ToolSource, call.source),
    )


def chat_message_to_proto(m: ChatMessage) -> session_pb2.ChatMessage:
    return session_pb2.ChatMessage(
        role=enum_to_proto(session_pb2.ChatRole, Role(m.role)),
        content=m.content,
        interrupted=m.interrupted,
        tool_calls=[tool_call_to_proto(c) for c in m.tool_calls],
        tool_call_id=m.tool_call_id,
    )


def turn_metrics_to_proto(t: TurnMetricsSnapshot) -> session_pb2.TurnMetrics:
    return session_pb2.TurnMetrics(
        end_of_turn_delay_ms=t.end_of_turn_delay_ms, stt_latency_ms=t.stt_latency_ms, llm_ttft_ms=t.llm_ttft_ms,
        tts_ttfb_ms=t.tts_ttfb_ms, e2e_latency_ms=t.e2e_latency_ms,
    )


def metrics_to_proto(m: SessionMetricsSnapshot) -> session_pb2.SessionMetrics:
    return session_pb2.SessionMetrics(
        last_turn=turn_metrics_to_proto(m.last_turn), mean=turn_metrics_to_proto(m.mean), turns=m.turns,
        interruptions=m.interruptions, false_interruptions=m.false_interruptions, frames_dropped=m.frames_dropped,
        underruns=m.underruns, duration_seconds=m.duration_seconds,
    )


def layer_status_to_proto(status: LayerStatus) -> session_pb2.AudioLayerStatus:
    return session_pb2.AudioLayerStatus(playing=status.playing, source=status.source, gain=status.gain)


def tool_info_to_proto(tool: ToolSpec) -> session_pb2.ToolInfo:
    return session_pb2.ToolInfo(
        name=tool.name, description=tool.description, source=enum_to_proto(session_pb2.ToolSource, tool.source),
        mcp_server=tool.mcp_server,
    )


def session_to_proto(s: SessionSnapshot, idle_ttl_seconds: float) -> session_pb2.Session:
    return session_pb2.Session(
        name=s.name,
        config=config_to_proto(s.config, idle_ttl_seconds),
        status=enum_to_proto(session_pb2.SessionStatus, s.status),
        agent_state=enum_to_proto(session_pb2.AgentState, s.agent_state),
        user_state=enum_to_proto(session_pb2.UserState, s.user_state),
        create_time=timestamp(s.create_time),
        close_time=timestamp(s.close_time),
        close_reason=s.close_reason,
        utterances=[utterance_to_proto(u) for u in s.utterances],
        chat_history=[chat_message_to_proto(m) for m in s.chat_history],
        metrics=metrics_to_proto(s.metrics),
        audio_stream_attached=s.audio_stream_attached,
        tools=[tool_info_to_proto(t) for t in s.tools],
        background_audio=layer_status_to_proto(s.background_audio),
        thinking_audio=layer_status_to_proto(s.thinking_audio),
    )


# -- events: engine -> proto ------------------------------------------------

_INTERRUPTION_KINDS = {
    "interrupted": events_pb2.INTERRUPTION_KIND_INTERRUPTED,
    "paused": events_pb2.INTERRUPTION_KIND_PAUSED,
    "resumed": events_pb2.INTERRUPTION_KIND_RESUMED,
}


def _state_change(message: Any, enum: Any, old: AgentState | UserState, new: AgentState | UserState) -> Any:
    return message(old_state=enum_to_proto(enum, old), new_state=enum_to_proto(enum, new))


def frame_to_proto(frame: OutFrame) -> agent_session_service_pb2.StreamAudioResponse:
    """One frame of the agent's audio as the StreamAudio message that carries it."""
    return agent_session_service_pb2.StreamAudioResponse(audio=audio_pb2.AudioFrame(
        pcm=frame.pcm, sequence=frame.sequence, timestamp_ms=frame.timestamp_ms, utterance_id=frame.utterance_id))


def event_to_proto(event: ev.SessionEvent) -> events_pb2.SessionEvent:
    out = events_pb2.SessionEvent(session=event.session, sequence=event.sequence, time=timestamp(event.time))
    p = event.payload
    match p:
        case ev.AgentStateChanged():
            out.agent_state_changed.CopyFrom(
                _state_change(events_pb2.AgentStateChanged, session_pb2.AgentState, p.old_state, p.new_state)
            )
        case ev.UserStateChanged():
            out.user_state_changed.CopyFrom(
                _state_change(events_pb2.UserStateChanged, session_pb2.UserState, p.old_state, p.new_state)
            )
        case ev.TranscriptEvent():
            out.transcript.CopyFrom(
                events_pb2.Transcript(
                    text=p.text, is_final=p.is_final,
                    words=[
                        events_pb2.TranscriptWord(word=w.word, start_ms=w.start_ms, end_ms=w.end_ms) for w in p.words
                    ],
                )
            )
        case ev.UtteranceUpdated():
            out.utterance_updated.utterance.CopyFrom(utterance_to_proto(p.utterance))
        case ev.AgentText():
            out.agent_text.CopyFrom(events_pb2.AgentText(utterance_id=p.utterance_id, text=p.text))
        case ev.ToolCallRequested():
            out.tool_call_requested.CopyFrom(
                events_pb2.ToolCallRequested(call=tool_call_to_proto(p.call), timeout_seconds=p.timeout_seconds)
            )
        case ev.ToolCallCompleted():
            out.tool_call_completed.CopyFrom(
                events_pb2.ToolCallCompleted(call=tool_call_to_proto(p.call), result=p.result, is_error=p.is_error)
            )
        case ev.ClearAudio():
            out.clear_audio.utterance_id = p.utterance_id
        case ev.Interruption():
            out.interruption.CopyFrom(
                events_pb2.Interruption(
                    kind=_INTERRUPTION_KINDS[p.kind], utterance_id=p.utterance_id, by_request=p.by_request
                )
            )
        case ev.WakeUp():
            out.wake_up.idle_seconds = p.idle_seconds
        case ev.MetricsUpdated():
            out.metrics_updated.turn.CopyFrom(turn_metrics_to_proto(p.turn))
        case ev.FramesDropped():
            out.frames_dropped.CopyFrom(events_pb2.FramesDropped(count=p.count, total=p.total))
        case ev.SessionWarning():
            out.warning.CopyFrom(
                events_pb2.SessionWarning(reason=p.reason, message=p.message, utterance_id=p.utterance_id)
            )
        case ev.SessionClosed():
            out.session_closed.reason = p.reason
        case _:
            assert_never(p)  # every event type has its message: the type checker and a test hold this
    return out



def recording_info_to_proto(info: RecordingInfo) -> agent_session_service_pb2.RecordingInfo:
    return agent_session_service_pb2.RecordingInfo(
        media_type=info.media_type, sample_rate_hz=info.sample_rate_hz, channels=info.channels,
        duration_seconds=info.duration_seconds, complete=info.complete, truncated=info.truncated)
