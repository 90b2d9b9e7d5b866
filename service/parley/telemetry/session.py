"""One session's trace: a root span, child spans per user turn and agent turn.

The engine calls these hooks at moments it already has (an utterance queued,
its first frame out of the mixer, its end, a user turn ended, an
interruption). The hooks are declared (and "off" is implemented) by the engine's
`SessionObserver`; `TracedSession` is the traced one.

Tree (names in `spans.py`):

    agent_session                      session.id, providers, models, labels
      user_turn                        speech start .. end of turn
        stt                            speech end .. final transcript
        end_of_turn                    speech end .. turn ended
      agent_turn                       queued .. played / interrupted / failed
        chat {model}                   one per model round: TTFT, gen_ai.usage.*
          execute_tool {name}          one per tool call
        tts                            first synthesis .. last audio pushed (TTFB)
        agent_speech                   first frame out .. last frame (heard chars)
        interruption                   when the speech was cut
      {service}/{Say|Reply|...}        call spans (see calls.py)
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from parley.chat import ToolCall
from parley.providers.base import LLM, LLMChunk, Usage
from parley.sessions.metrics import TurnMetricsSnapshot
from parley.sessions.observer import ReplyObserver, SessionDescription, SessionObserver
from parley.sessions.states import UtteranceState
from parley.telemetry import spans as names
from parley.telemetry.calls import CallScope, bind_call, current_call
from parley.telemetry.instruments import Instruments

if TYPE_CHECKING:
    from parley.sessions.listener import UserTurn
    from parley.sessions.tools import ToolOutcome
    from parley.sessions.utterance import Utterance

ENDED_TURNS_KEPT = 16  # agent turns whose context an interruption may still need


@dataclass
class _Turn:
    span: Span
    tts: Span | None = None
    speech: Span | None = None


class _Reply(ReplyObserver):
    """A reply's model rounds as "chat {model}" spans under its agent turn, tool calls under the round."""

    def __init__(self, owner: TracedSession, utterance_id: str) -> None:
        self._owner = owner
        self._utterance_id = utterance_id
        self._round: Context | None = None  # the last model round, parent of its tool calls

    async def stream(self, llm: LLM, chunks: AsyncIterator[LLMChunk]) -> AsyncIterator[LLMChunk]:
        started = time.monotonic()
        span = self._owner.tracer.start_span(
            names.llm_span_name(llm.model), context=self._owner.turn_context(self._utterance_id), kind=SpanKind.CLIENT,
            attributes={names.GEN_AI_OPERATION: "chat", names.GEN_AI_PROVIDER: llm.name,
                        names.GEN_AI_REQUEST_MODEL: llm.model})
        self._round = trace.set_span_in_context(span)
        first, tool_calls, input_tokens, output_tokens = True, 0, 0, 0
        try:
            async for chunk in chunks:
                if isinstance(chunk, Usage):
                    input_tokens += chunk.input_tokens
                    output_tokens += chunk.output_tokens
                else:
                    tool_calls += isinstance(chunk, ToolCall)
                    if first:
                        first = False
                        span.set_attribute("parley.llm.ttft_ms", round((time.monotonic() - started) * 1000, 3))
                        span.add_event("first_token")
                yield chunk
            span.set_attribute(names.GEN_AI_FINISH_REASONS, ["tool_calls" if tool_calls else "stop"])
        except (GeneratorExit, asyncio.CancelledError):
            span.set_attribute("parley.llm.cancelled", True)  # the reply was cut: not an error
            raise
        except Exception as exc:
            span.set_attribute(names.ERROR_TYPE, type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
            raise
        finally:
            span.set_attributes({names.GEN_AI_INPUT_TOKENS: input_tokens, names.GEN_AI_OUTPUT_TOKENS: output_tokens})
            span.end()

    async def tool(self, call: ToolCall, run: Callable[[ToolCall], Awaitable[ToolOutcome]]) -> ToolOutcome:
        span = self._owner.tracer.start_span(
            names.tool_span_name(call.name), context=self._round or self._owner.turn_context(self._utterance_id),
            attributes={names.GEN_AI_OPERATION: "execute_tool", names.GEN_AI_TOOL_NAME: call.name,
                        names.GEN_AI_TOOL_CALL_ID: call.id, names.GEN_AI_TOOL_TYPE: "function",
                        "parley.tool.source": call.source.name.lower()})
        try:
            outcome = await run(call)
        except BaseException as exc:
            span.set_attribute(names.ERROR_TYPE, type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        else:
            if outcome.is_error:
                span.set_attribute(names.ERROR_TYPE, "tool_error")
                span.set_status(Status(StatusCode.ERROR, outcome.result[:200]))
            return outcome
        finally:
            span.end()


class TracedSession(SessionObserver):
    """A session's spans and its share of the server's instruments."""

    def __init__(self, tracer: trace.Tracer, instruments: Instruments, session: SessionDescription,
                 request_flush: Callable[[], None]) -> None:
        self.tracer = tracer
        self._instruments = instruments
        self._request_flush = request_flush
        self._turns: dict[str, _Turn] = {}
        self._ended: OrderedDict[str, SpanContext] = OrderedDict()
        self._user_speech_start: int | None = None
        self._last_user_turn: SpanContext | None = None
        self._session_id = session.name
        self._tts_attributes = {"parley.tts.provider": session.tts, "parley.tts.voice": session.voice}
        self._stt_attributes = {"parley.stt.provider": session.stt}
        self._eot_attributes = {"parley.turn_detector.provider": session.turn_detector}
        call = current_call()
        parent = call.parent if call is not None and call.rpc_method == "Start" else None
        self.root = tracer.start_span(names.SESSION, context=parent or Context(), kind=SpanKind.SERVER,
                                      attributes=_session_attributes(session))
        self._root_context = trace.set_span_in_context(self.root)
        instruments.active_sessions.add(1)
        bind_call(self)

    # -- calls ----------------------------------------------------------------------

    def bind_call(self, scope: CallScope) -> Span | None:
        links = [Link(self.root.get_span_context())] if scope.parent is not None else []
        return self.tracer.start_span(
            scope.name, context=scope.parent or self._root_context, kind=SpanKind.SERVER, links=links,
            start_time=scope.start_ns, attributes={
                "rpc.system": "grpc", "rpc.service": scope.rpc_service, "rpc.method": scope.rpc_method,
                names.SESSION_ID: self._session_id,
            })

    # -- agent turns ------------------------------------------------------------------

    def agent_turn(self, utterance: Utterance, *, answers_user: bool) -> None:
        links = []
        call = current_call()
        if call is not None and call.span is not None:
            links.append(Link(call.span.get_span_context(), {"parley.link": "call"}))
        if answers_user and self._last_user_turn is not None:
            links.append(Link(self._last_user_turn, {"parley.link": "user_turn"}))
        span = self.tracer.start_span(names.AGENT_TURN, context=self._root_context, links=links, attributes={
            "parley.utterance.id": utterance.id, "parley.utterance.source": utterance.source.name.lower(),
            "parley.utterance.interruptible": utterance.interruptible,
        })
        self._turns[utterance.id] = _Turn(span)

    def turn_context(self, utterance_id: str) -> Context:
        turn = self._turns.get(utterance_id)
        return trace.set_span_in_context(turn.span) if turn is not None else self._root_context

    def reply(self, utterance: Utterance) -> ReplyObserver:
        return _Reply(self, utterance.id)

    def tts_first_byte(self, utterance: Utterance, ms: float) -> None:
        turn = self._turns.get(utterance.id)
        if turn is None or turn.tts is not None:
            return
        turn.tts = self.tracer.start_span(
            names.TTS, context=trace.set_span_in_context(turn.span), start_time=time.time_ns() - int(ms * 1e6),
            attributes={"parley.tts.ttfb_ms": round(ms, 3), **self._tts_attributes},
        )

    def synthesis_finished(self, utterance: Utterance) -> None:
        turn = self._turns.get(utterance.id)
        if turn is not None and turn.tts is not None and turn.tts.is_recording():
            turn.tts.set_attribute("parley.tts.characters", len(utterance.text))
            turn.tts.end()

    def speech_started(self, utterance: Utterance, turn_metrics: TurnMetricsSnapshot | None) -> None:
        turn = self._turns.get(utterance.id)
        if turn is None:
            return
        turn.speech = self.tracer.start_span(names.AGENT_SPEECH, context=trace.set_span_in_context(turn.span))
        if turn_metrics is not None:
            self._instruments.record_turn(turn_metrics)
            turn.span.set_attributes({
                f"parley.turn.{field}": round(getattr(turn_metrics, field), 3)
                for field in ("end_of_turn_delay_ms", "stt_latency_ms", "llm_ttft_ms", "tts_ttfb_ms", "e2e_latency_ms")
            })

    def speech_finished(self, utterance: Utterance) -> None:
        turn = self._turns.pop(utterance.id, None)
        if turn is None:
            return
        state = utterance.state.name.lower()
        if turn.tts is not None and turn.tts.is_recording():
            turn.tts.set_attribute("parley.tts.cancelled", True)
            turn.tts.end()
        if turn.speech is not None:
            turn.speech.set_attributes({
                "parley.speech.state": state,
                "parley.speech.interrupted": utterance.state is UtteranceState.INTERRUPTED,
                "parley.speech.characters": len(utterance.text),
                "parley.speech.heard_characters": len(utterance.heard_text),
                "parley.speech.played_ms": utterance.played_ms,
            })
            turn.speech.end()
        turn.span.set_attribute("parley.utterance.state", state)
        if utterance.state is UtteranceState.FAILED:
            turn.span.set_status(Status(StatusCode.ERROR, utterance.error[:200]))
        turn.span.end()
        self._ended[utterance.id] = turn.span.get_span_context()
        while len(self._ended) > ENDED_TURNS_KEPT:
            self._ended.popitem(last=False)

    def interrupted(self, utterance: Utterance, by_request: bool) -> None:
        if utterance.start_time is None:  # cut while still queued: never heard
            self.speech_finished(utterance)
            return
        self._instruments.interruptions.add(1)
        turn_span = self._ended.get(utterance.id)
        parent = trace.set_span_in_context(trace.NonRecordingSpan(turn_span)) if turn_span else self._root_context
        links = []
        call = current_call()
        if call is not None and call.span is not None:
            links.append(Link(call.span.get_span_context(), {"parley.link": "call"}))
        span = self.tracer.start_span(names.INTERRUPTION, context=parent, links=links, attributes={
            "parley.interruption.by_request": by_request, "parley.utterance.id": utterance.id,
            "parley.speech.heard_characters": len(utterance.heard_text), "parley.speech.played_ms": utterance.played_ms,
        })
        span.end()

    def false_interruption(self, utterance: Utterance | None) -> None:
        self._instruments.false_interruptions.add(1)
        turn = self._turns.get(utterance.id) if utterance is not None else None
        if turn is not None and turn.speech is not None:
            turn.speech.add_event("false_interruption")

    # -- user turns -------------------------------------------------------------------

    def user_speech_started(self) -> None:
        if self._user_speech_start is None:
            self._user_speech_start = time.time_ns()

    def user_turn(self, turn: UserTurn) -> None:
        now = time.time_ns()
        speech_end = names.wall_ns(turn.speech_end)
        start = min(self._user_speech_start or speech_end, speech_end)
        self._user_speech_start = None
        span = self.tracer.start_span(names.USER_TURN, context=self._root_context, start_time=start, attributes={
            "parley.user.transcript_characters": len(turn.text),
            "parley.turn.end_of_turn_delay_ms": round(turn.end_of_turn_delay_ms, 3),
            "parley.turn.stt_latency_ms": round(turn.stt_latency_ms, 3),
        })
        inside = trace.set_span_in_context(span)
        stt = self.tracer.start_span(names.STT, context=inside, start_time=speech_end,
                                     attributes=self._stt_attributes)
        stt.end(end_time=speech_end + int(turn.stt_latency_ms * 1e6))
        eot = self.tracer.start_span(names.END_OF_TURN, context=inside, start_time=speech_end,
                                     attributes=self._eot_attributes)
        eot.end(end_time=now)
        span.end(end_time=now)
        self._last_user_turn = span.get_span_context()

    # -- counters and close ------------------------------------------------------------

    def frames_dropped(self, count: int) -> None:
        self._instruments.frames_dropped.add(count)

    def underruns(self, count: int) -> None:
        self._instruments.underruns.add(count)

    def close(self, reason: str, duration_seconds: float) -> None:
        for turn in list(self._turns.values()):
            for span in (turn.tts, turn.speech, turn.span):
                if span is not None and span.is_recording():
                    span.set_attribute("parley.closed_early", True)
                    span.end()
        self._turns.clear()
        self.root.set_attribute("parley.session.close_reason", reason)
        self.root.set_attribute("parley.session.duration_s", round(duration_seconds, 3))
        self.root.end()
        self._instruments.active_sessions.add(-1)
        self._instruments.session_duration.record(duration_seconds)
        self._request_flush()


def _session_attributes(session: SessionDescription) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        names.SESSION_ID: session.name,
        "parley.stt.provider": session.stt,
        "parley.tts.provider": session.tts,
        "parley.tts.voice": session.voice,
        "parley.vad.provider": session.vad,
        "parley.turn_detector.provider": session.turn_detector,
        names.GEN_AI_PROVIDER: session.llm,
        names.GEN_AI_REQUEST_MODEL: session.llm_model,
    }
    for stage, model in (("stt", session.stt_model), ("tts", session.tts_model)):
        if model:
            attributes[f"parley.{stage}.model"] = model
    for key, value in session.labels.items():
        attributes[f"parley.label.{key}"] = value
    return attributes
