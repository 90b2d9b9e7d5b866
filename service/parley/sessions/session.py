"""One agent session: states, speech, listening, layers, tools, streams, lifecycle.

The session wires its parts together and owns all of them: its event bus,
clock, mixer, providers, timers and tasks live on the instance, and
`close()` releases every one. Nothing here knows about gRPC.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from parley.audio.mixer import Mixer
from parley.chat import ChatMessage, Role, ToolCall, ToolSource, ToolSpec
from parley.errors import Aborted, FailedPrecondition, InvalidArgument, ResourceExhausted
from parley.logs import SessionLogger
from parley.mcp.toolbox import McpToolbox
from parley.providers import registry as providers
from parley.providers.base import LLM, STT, TTS, VAD, Transcript, TurnDetector
from parley.providers.workers import Workers
from parley.sessions import events as ev
from parley.sessions.barge_in import BargeIn
from parley.sessions.clock import LOOP_CLOCK, Clock
from parley.sessions.config import AgentAction, AudioLayerConfig, SessionConfig
from parley.sessions.idempotency import RequestLog
from parley.sessions.layers import Layers, LayerStatus
from parley.sessions.limits import SessionLimits
from parley.sessions.listener import Listener, ListenerCallbacks, UserTurn
from parley.sessions.metrics import SessionMetrics, SessionMetricsSnapshot, TurnMetricsSnapshot
from parley.sessions.playout import Pacer
from parley.sessions.ratelimit import TokenBucket
from parley.sessions.replies import ReplyStats, generate_reply
from parley.sessions.speech import Speaker, SpeechJob
from parley.sessions.stall import guard_llm, guard_tts
from parley.sessions.states import AgentState, SessionStatus, UserState, UtteranceSource, UtteranceState
from parley.sessions.stream import AttachedStream, OutFrame, StreamSpec
from parley.sessions.tools import ToolCalls, ToolOutcome
from parley.sessions.utterance import Utterance, UtteranceSnapshot
from parley.sessions.wakeup import WakeUpTimer
from parley.telemetry import NO_SESSION_TELEMETRY, SessionTelemetry, Telemetry

log = logging.getLogger("parley.session")

INPUT_RATES = range(8000, 48001)
SPEECH_BUFFER_MS = 3000  # synthesized speech held ahead of play-out, per session


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


@dataclass
class _PendingTurn:
    """Latencies of a user turn, completed when its reply's first frame plays."""

    user: UserTurn
    stats: ReplyStats
    tts_ttfb_ms: float = 0.0


class Session:
    """Server-side state of one agent session."""

    def __init__(
        self, name: str, owner: str, config: SessionConfig, *, idle_ttl_seconds: float, workers: Workers,
        limits: SessionLimits = SessionLimits(), hooks: SessionHooks | None = None,
        telemetry: Telemetry | None = None, clock: Clock = LOOP_CLOCK,
    ) -> None:
        self.clock = clock
        self.name = name
        self.owner = owner
        self.config = config
        self.idle_ttl_seconds = idle_ttl_seconds
        self.limits = limits
        self.hooks = hooks or SessionHooks()
        self.status = SessionStatus.ACTIVE
        self.agent_state = AgentState.STARTING
        self.user_state = UserState.IDLE
        self.create_time = time.time()
        self.close_time: float | None = None
        self.close_reason = ""
        self.log = SessionLogger(log, {"session": name})
        self.bus = ev.EventBus(name, max_subscribers=limits.max_subscribers)
        self.metrics = SessionMetrics()
        self.chat_history: list[ChatMessage] = (
            [ChatMessage(Role.SYSTEM, config.instructions)] if config.instructions else []
        )
        self.tools: list[ToolSpec] = list(config.tools)
        self.tool_calls = ToolCalls()
        self.mcp = McpToolbox(config.mcp_servers, allow_stdio=limits.allow_mcp_stdio, on_lost=self._warn)
        self.request_rate = TokenBucket(limits.max_requests_per_second, limits.request_burst)
        self._requests = RequestLog(1000)
        self._ids = itertools.count(1)
        self._utterances: dict[str, Utterance] = {}
        self._recent: deque[Utterance] = deque(maxlen=limits.recent_utterances)
        self._workers = workers
        self._started = time.monotonic()
        self.last_activity = self._started
        self._closing: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._thinking = False
        self.barge_in = BargeIn(config.interruption, _BargeInActions(self), clock)
        self._reply_turns: dict[str, _PendingTurn] = {}
        self._greeted = False
        self.stream: AttachedStream | None = None
        self._reattach_timer: asyncio.TimerHandle | None = None
        fmt = config.output_format
        self.mixer = Mixer(fmt.sample_rate_hz, speech_limit_ms=SPEECH_BUFFER_MS)
        self.layers = Layers(self.mixer, config, workers, audio_dir=limits.audio_dir,
                             max_file_bytes=limits.max_layer_file_bytes)
        self.tts: TTS = guard_tts(self._build("tts"), limits.provider_stall_seconds)
        self.llm: LLM = guard_llm(self._build("llm"), limits.provider_stall_seconds)
        self.stt: STT = self._build("stt")
        self.vad: VAD = self._build("vad")
        self.turn_detector: TurnDetector = self._build("turn_detector")
        self.pacer = Pacer(20, self._tick, self._clock_needed)
        self.speaker = Speaker(self.tts, self.mixer, _SpeakerEvents(self), max_queued=limits.max_queued_utterances)
        self.listener: Listener | None = None
        self.wakeup = WakeUpTimer(config.wake_up.after_seconds, self._on_wake_up)
        self.telemetry: SessionTelemetry = telemetry.open_session(self) if telemetry else NO_SESSION_TELEMETRY

    def _build(self, stage: str) -> Any:
        choice = getattr(self.config.providers, stage)
        return providers.build(stage, choice.name, choice.options, voice=self.config.voice, workers=self._workers)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self.tools.extend(await self.mcp.open(self.tools, self._warn_at_start))
        if len(self.tools) > self.limits.max_tools:
            raise ResourceExhausted(
                "max_tools", f"at most {self.limits.max_tools} tools per session, MCP tools included"
            )
        await self.layers.check_configured()
        if self.config.background_audio.play_on_start:
            await self.layers.play_background(None, self.config.background_audio.override_thinking)
            self.pacer.wake()
        self._set_agent_state(AgentState.IDLE)
        self.log.info("session started")

    def _warn(self, reason: str, message: str) -> None:
        self.log.warning(message, extra={"reason": reason})
        self.bus.publish(ev.SessionWarning(reason, message))

    def _warn_at_start(self, reason: str, message: str) -> None:
        """A start-up warning reaches every later watcher and stream: no one watches before Start returns."""
        self.log.warning(message, extra={"reason": reason})
        self.bus.pin(ev.SessionWarning(reason, message))

    async def close(self, reason: str = "closed by client", farewell: AgentAction | None = None,
                    farewell_timeout: float = 10.0) -> None:
        """End the session; concurrent and repeated calls wait for the same close."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(reason, farewell, farewell_timeout))
        await asyncio.shield(self._closing)

    async def _close(self, reason: str, farewell: AgentAction | None, farewell_timeout: float) -> None:
        if farewell is not None and self.status is SessionStatus.ACTIVE:
            await self._say_farewell(farewell, farewell_timeout)
        self._set_agent_state(AgentState.CLOSING)
        self.status = SessionStatus.CLOSED
        self.close_time = time.time()
        self.close_reason = reason
        self.wakeup.cancel()
        self.barge_in.close()
        if self._reattach_timer is not None:
            self._reattach_timer.cancel()
        self.tool_calls.cancel_all()
        await self.speaker.aclose()
        await self.pacer.aclose()
        if self.listener is not None:
            await self.listener.aclose()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self.layers.close()
        await self.mcp.aclose()
        await self.llm.aclose()
        self.bus.publish(ev.SessionClosed(reason))
        if self.stream is not None:
            self.stream.outbox.end()
            self.stream = None
        self.bus.close()
        self.telemetry.close(reason, self.close_time - self.create_time)
        self.log.info("session closed", extra={"reason": reason})

    async def _say_farewell(self, farewell: AgentAction, timeout: float) -> None:
        self._interrupt(include_queued=True, fade_ms=50, force=True, by_request=True)
        utterance = self._start_action(farewell, UtteranceSource.FAREWELL)
        try:
            await asyncio.wait_for(asyncio.shield(utterance.done), timeout)
        except TimeoutError:
            self.log.warning("farewell timed out", extra={"utterance": utterance.id})

    @property
    def closed(self) -> bool:
        return self.status is SessionStatus.CLOSED or self._closing is not None

    @property
    def finished(self) -> bool:
        """Closing is over (a farewell may still be playing while `closed` is already true)."""
        return self._closing is not None and self._closing.done()

    def ensure_active(self) -> None:
        if self.closed:
            raise FailedPrecondition(f"{self.name} is closed", reason="SESSION_CLOSED")

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def reapable(self, now: float) -> bool:
        """Idle past its TTL: no call and no attached audio stream for that long."""
        return self.stream is None and now - self.last_activity > self.idle_ttl_seconds

    async def idempotent(self, method: str, request_id: str, action: Callable[[], Awaitable[Any]],
                         fingerprint: Hashable = None) -> Any:
        """Run a mutating call once per request id (`fingerprint`: what makes a reused id a different request)."""
        return await self._requests.run((method, request_id) if request_id else None, action, fingerprint)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self.name}:{name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- speaking ----------------------------------------------------------------

    def _new_utterance(
        self, source: UtteranceSource, text: str, interruptible: bool, add_to_context: bool
    ) -> Utterance:
        utterance = Utterance(f"u{next(self._ids)}", source, text, interruptible=interruptible,
                              add_to_context=add_to_context)
        self._utterances[utterance.id] = utterance
        self._recent.append(utterance)
        while len(self._utterances) > 4 * self.limits.recent_utterances:
            self._utterances.pop(next(iter(self._utterances)))
        return utterance

    def _check_text(self, text: str, field: str, *, required: bool) -> str:
        if required and not text.strip():
            raise InvalidArgument(field, "must not be empty")
        if len(text) > self.limits.max_text_chars:
            raise InvalidArgument(
                field, f"is {len(text)} characters; the limit (max_text_chars) is {self.limits.max_text_chars}"
            )
        if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
            raise InvalidArgument(field, "contains control characters")
        return text

    def say(self, text: str, *, interruptible: bool = True, add_to_context: bool = True,
            source: UtteranceSource = UtteranceSource.SAY) -> Utterance:
        """Queue a text to speak; returns its handle at once."""
        if source is not UtteranceSource.FAREWELL:  # the farewell is said while the session closes
            self.ensure_active()
        self._check_text(text, "text", required=True)
        utterance = self._new_utterance(source, text, interruptible, add_to_context)

        async def pieces() -> AsyncIterator[str]:
            yield text

        self._enqueue(SpeechJob(utterance, pieces))
        return utterance

    def reply(self, *, instructions: str = "", user_text: str = "", busy: BusyPolicy = BusyPolicy.QUEUE,
              interruptible: bool = True, source: UtteranceSource = UtteranceSource.REPLY,
              turn: _PendingTurn | None = None) -> Utterance:
        """Queue an answer from the language model; returns its handle at once."""
        if source is not UtteranceSource.FAREWELL:  # the farewell is said while the session closes
            self.ensure_active()
        self._check_text(instructions, "instructions", required=False)
        self._check_text(user_text, "user_text", required=False)
        if self.speaker.busy:
            if busy is BusyPolicy.REJECT:
                raise FailedPrecondition("the agent is busy and busy_policy is REJECT", reason="AGENT_BUSY")
            if busy is BusyPolicy.INTERRUPT:
                self._interrupt(include_queued=True, fade_ms=20, force=False, by_request=True)
        utterance = self._new_utterance(source, "", interruptible, True)
        stats = turn.stats if turn is not None else ReplyStats()
        if turn is not None:
            self._reply_turns[utterance.id] = turn

        if user_text:
            self.chat_history.append(ChatMessage(Role.USER, user_text))

        async def pieces() -> AsyncIterator[str]:
            async for piece in generate_reply(self.llm, self.chat_history, self.tools, self._run_tool,
                                              instructions=instructions, stats=stats,
                                              trace=self.telemetry.reply_trace(utterance)):
                yield piece

        self._enqueue(SpeechJob(utterance, pieces, is_reply=True))
        return utterance

    def _enqueue(self, job: SpeechJob) -> None:
        self.speaker.enqueue(job)
        self.telemetry.agent_turn(job.utterance, answers_user=job.utterance.id in self._reply_turns)
        self.pacer.wake()
        self._publish_utterance(job.utterance)
        self._refresh_idle()

    def _start_action(self, action: AgentAction, source: UtteranceSource) -> Utterance:
        if action.say_text is not None:
            return self.say(action.say_text, source=source)
        return self.reply(instructions=action.reply_instructions or "", source=source)

    def utterance(self, utterance_id: str) -> Utterance:
        found = self._utterances.get(utterance_id)
        if found is None:
            raise InvalidArgument("utterance_id", f"no utterance {utterance_id[:80]!r} in this session")
        return found

    async def wait_utterance(self, utterance_id: str) -> UtteranceSnapshot:
        return await asyncio.shield(self.utterance(utterance_id).done)

    def interrupt(self, *, force: bool = False, include_queued: bool = False, fade_ms: int = 20) -> list[Utterance]:
        self.ensure_active()
        if not 0 <= fade_ms <= 1000:
            raise InvalidArgument("fade_ms", f"must be 0..1000, got {fade_ms}")
        return self._interrupt(include_queued=include_queued, fade_ms=fade_ms or 20, force=force, by_request=True)

    def _interrupt(self, *, include_queued: bool, fade_ms: int, force: bool, by_request: bool) -> list[Utterance]:
        self.barge_in.reset()
        cut = self.speaker.interrupt(include_queued=include_queued, fade_ms=fade_ms, force=force,
                                     reason="INTERRUPT_CALLED" if by_request else "CALLER_SPOKE")
        for utterance in cut:
            self.telemetry.interrupted(utterance, by_request)
            if utterance.state is UtteranceState.INTERRUPTED and utterance.start_time is not None:
                self.metrics.interruptions += 1
                self.bus.publish(ev.Interruption("interrupted", utterance.id, by_request))
                self.bus.publish(ev.ClearAudio(utterance.id))
        return cut

    # -- tools --------------------------------------------------------------------

    async def _run_tool(self, call: ToolCall) -> ToolOutcome:
        """Client tools wait for SubmitToolResult; MCP tools are called by the server itself."""
        spec = next((t for t in self.tools if t.name == call.name), None)
        mcp = spec is not None and spec.source is ToolSource.MCP
        timeout = self.mcp.call_timeout(call.name) if mcp else self.config.tool_timeout_seconds
        self.bus.publish(ev.ToolCallRequested(call, timeout))
        if spec is None:
            outcome = ToolOutcome(f"error: unknown tool {call.name!r}", True)
        elif mcp:
            result = await self.mcp.call(call)
            outcome = ToolOutcome(result.text, result.is_error)
        else:
            outcome = await self.tool_calls.wait(call, timeout)
        self.bus.publish(ev.ToolCallCompleted(call, outcome.result, outcome.is_error))
        return outcome

    def submit_tool_result(self, call_id: str, result: str, is_error: bool) -> ToolCall:
        self.ensure_active()
        self._check_text(result, "result" if not is_error else "error", required=False)
        return self.tool_calls.submit(call_id, result, is_error)

    # -- layers --------------------------------------------------------------------

    async def play_background(self, layer: AudioLayerConfig | None, override_thinking: bool) -> LayerStatus:
        self.ensure_active()
        status = await self.layers.play_background(layer, override_thinking)
        self.pacer.wake()
        return status

    def stop_background(self, fade_ms: int) -> LayerStatus:
        self.ensure_active()
        return self.layers.stop_background(fade_ms)

    async def start_thinking(self, layer: AudioLayerConfig | None, layer_over_background: bool) -> LayerStatus:
        self.ensure_active()
        status = await self.layers.start_thinking(layer, layer_over_background)
        self.pacer.wake()
        return status

    def stop_thinking(self, fade_ms: int) -> LayerStatus:
        self.ensure_active()
        return self.layers.stop_thinking(fade_ms)

    # -- audio stream ------------------------------------------------------------------

    def attach_stream(self, spec: StreamSpec, *, take_over: bool) -> AttachedStream:
        self.ensure_active()
        if spec.input_rate not in INPUT_RATES:
            raise InvalidArgument("config.input_format.sample_rate_hz", f"must be 8000..48000, got {spec.input_rate}")
        if spec.input_channels not in (1, 2):
            raise InvalidArgument("config.input_format.channels", f"must be 1 or 2, got {spec.input_channels}")
        if not 0 <= spec.lead_ms <= 500:
            raise InvalidArgument("config.lead_ms", f"must be 0..500, got {spec.lead_ms}")
        if self.stream is not None:
            if not take_over:
                raise Aborted(f"{self.name} already has an audio stream; set take_over to replace it",
                              reason="STREAM_ATTACHED")
            self.bus.remove_sink(self.stream.outbox.put_event)
            self.stream.take_over()
        if self.listener is None:
            self.listener = Listener(self.vad, self.stt, self.turn_detector, self.config.turn_detection,
                                     _ListenerEvents(self), self.clock)
        stream = AttachedStream(spec, self.config.output_format.sample_rate_hz, self.limits.stream_frame_buffer,
                                self.listener.sample_rate)
        self.stream = stream
        self.bus.add_sink(stream.outbox.put_event)
        if self._reattach_timer is not None:
            self._reattach_timer.cancel()
            self._reattach_timer = None
        self.pacer.lead_seconds = spec.lead_ms / 1000
        self.pacer.wake()
        self._set_user_state(UserState.LISTENING)
        if not self._greeted and self.config.greeting is not None:
            self._greeted = True
            self._start_action(self.config.greeting, UtteranceSource.GREETING)
        self.touch()
        return stream

    def detach_stream(self, stream: AttachedStream) -> None:
        self.bus.remove_sink(stream.outbox.put_event)
        if self.stream is not stream:
            return
        self.stream = None
        self.touch()
        self._set_user_state(UserState.IDLE)
        window = self.config.reattach_window_seconds
        if window > 0 and not self.closed:
            self._reattach_timer = asyncio.get_running_loop().call_later(
                window, lambda: self._spawn(self.close("audio stream did not come back"), "reattach-close")
            )

    def push_audio(self, stream: AttachedStream, pcm: bytes) -> None:
        """The caller's audio in the stream's input format."""
        if stream is not self.stream:
            return
        if len(pcm) == 0 or len(pcm) > self.limits.max_chunk_bytes:
            raise InvalidArgument(
                "audio.pcm", f"must be 1..{self.limits.max_chunk_bytes} bytes (max_chunk_bytes), got {len(pcm)}"
            )
        if len(pcm) % (2 * stream.spec.input_channels):
            raise InvalidArgument("audio.pcm", "length must be a whole number of 16-bit samples per channel")
        self.touch()
        samples = np.frombuffer(pcm, dtype="<i2")
        if stream.spec.input_channels == 2:
            samples = samples.reshape(-1, 2).mean(axis=1).astype(np.int16)
        mono = stream.input_resampler.process(samples)
        if self.hooks.on_user_audio is not None:
            replaced = self.hooks.on_user_audio(mono)
            mono = mono if replaced is None else replaced
        if self.listener is not None and len(mono):
            self.listener.feed(mono)

    # -- clock -------------------------------------------------------------------------

    def _clock_needed(self) -> bool:
        return (
            self.stream is not None or self.speaker.busy or self.mixer.speech_queued_samples > 0
            or self.mixer.layer_playing("background") or self.mixer.layer_playing("thinking")
        )

    def _tick(self, frame_index: int) -> None:
        """Mix one frame, send it, then account for it (so PLAYED follows the last frame)."""
        mixed = self.mixer.mix_frame()
        frame = np.frombuffer(mixed.pcm, dtype=np.int16)
        if self.hooks.on_agent_audio is not None:
            replaced = self.hooks.on_agent_audio(frame)
            frame = frame if replaced is None else replaced
        stream = self.stream
        if stream is not None:
            pcm = stream.adapter.push(frame)
            if pcm is not None:
                dropped_before = stream.outbox.dropped_pending
                stream.outbox.put_frame(OutFrame(
                    pcm, stream.sequence, int((time.monotonic() - self._started) * 1000), str(mixed.tag or ""),
                ))
                stream.sequence += 1
                if stream.outbox.dropped_pending and stream.outbox.dropped_pending == dropped_before:
                    self._report_drops(stream)
        if self.pacer.underruns != self.metrics.underruns:
            self.telemetry.underruns(self.pacer.underruns - self.metrics.underruns)
            self.metrics.underruns = self.pacer.underruns
        self.speaker.on_frame()

    def _report_drops(self, stream: AttachedStream) -> None:
        count, stream.outbox.dropped_pending = stream.outbox.dropped_pending, 0
        self.metrics.frames_dropped += count
        self.telemetry.frames_dropped(count)
        self.bus.publish(ev.FramesDropped(count, stream.outbox.dropped_total))

    # -- states -------------------------------------------------------------------------

    def _set_agent_state(self, state: AgentState) -> None:
        if state is not self.agent_state:
            old, self.agent_state = self.agent_state, state
            self.bus.publish(ev.AgentStateChanged(old, state))
        self._refresh_idle()

    def _set_user_state(self, state: UserState) -> None:
        if state is not self.user_state:
            old, self.user_state = self.user_state, state
            self.bus.publish(ev.UserStateChanged(old, state))
        self._refresh_agent_state()

    def _refresh_agent_state(self) -> None:
        if self.closed or self.agent_state is AgentState.STARTING:
            return
        current = self.speaker.current
        if current is not None and current.state is UtteranceState.SPEAKING and self.barge_in.paused is None:
            state = AgentState.SPEAKING
        elif self._thinking:
            state = AgentState.THINKING
        elif self.user_state is UserState.SPEAKING:
            state = AgentState.LISTENING
        else:
            state = AgentState.IDLE
        self._set_agent_state(state)

    def _refresh_idle(self) -> None:
        self.wakeup.idle_changed(
            not self.closed
            and self.agent_state is AgentState.IDLE
            and self.user_state is not UserState.SPEAKING
            and not self.speaker.busy
        )

    def _on_wake_up(self, idle_seconds: float) -> None:
        if self.closed or self.config.wake_up.action is None:
            return
        self.bus.publish(ev.WakeUp(idle_seconds))
        self._start_action(self.config.wake_up.action, UtteranceSource.WAKE_UP)

    # -- user speech, barge-in ------------------------------------------------------------

    def _on_user_speech_started(self) -> None:
        self.telemetry.user_speech_started()
        self._set_user_state(UserState.SPEAKING)
        self.barge_in.speech_started()

    def _on_user_speech_ended(self, when: float) -> None:
        self._set_user_state(UserState.LISTENING if self.stream is not None else UserState.IDLE)
        self.barge_in.speech_ended(when)

    def _on_transcript(self, transcript: Transcript) -> None:
        if transcript.text.strip():
            self.bus.publish(ev.TranscriptEvent(transcript.text, transcript.is_final, tuple(transcript.words)))
        self.barge_in.heard_words(len(transcript.text.split()), final=transcript.is_final)

    def _on_user_turn(self, turn: UserTurn) -> None:
        self.telemetry.user_turn(turn)
        self._spawn(self._handle_user_turn(turn), "user-turn")

    async def _handle_user_turn(self, turn: UserTurn) -> None:
        text = turn.text
        if self.hooks.on_user_transcript is not None:
            text = await _call_text_hook(self.hooks.on_user_transcript, text)
        if self.closed or not text.strip():
            return
        if not self.config.auto_reply:
            self.chat_history.append(ChatMessage(Role.USER, text))
            return
        # Replies to earlier turns that nobody has heard yet give way: this turn's reply answers them all.
        self.speaker.cancel_unheard(set(self._reply_turns), reason="SUPERSEDED")
        self.reply(user_text=text, turn=_PendingTurn(turn, ReplyStats()))

    # -- speaker callbacks -----------------------------------------------------------------

    def _publish_utterance(self, utterance: Utterance) -> None:
        self.bus.publish(ev.UtteranceUpdated(utterance.snapshot()))

    def _on_speech_started(self, utterance: Utterance) -> None:
        self.barge_in.agent_started(utterance)
        self._refresh_agent_state()
        pending = self._reply_turns.pop(utterance.id, None)
        turn = None
        if pending is not None:
            turn = TurnMetricsSnapshot(
                end_of_turn_delay_ms=pending.user.end_of_turn_delay_ms,
                stt_latency_ms=pending.user.stt_latency_ms,
                llm_ttft_ms=pending.stats.llm_ttft_ms,
                tts_ttfb_ms=pending.tts_ttfb_ms,
                e2e_latency_ms=(self.clock.now() - pending.user.speech_end) * 1000,
            )
            self.metrics.add_turn(turn)
            self.bus.publish(ev.MetricsUpdated(turn))
        self.telemetry.speech_started(utterance, turn)

    def _on_speech_finished(self, utterance: Utterance) -> None:
        self.telemetry.speech_finished(utterance)
        self._reply_turns.pop(utterance.id, None)
        self.barge_in.utterance_ended(utterance)
        if utterance.add_to_context and utterance.heard_text:
            self.chat_history.append(ChatMessage(
                Role.ASSISTANT, utterance.heard_text, interrupted=utterance.state is UtteranceState.INTERRUPTED
            ))
        self._refresh_agent_state()
        self._refresh_idle()

    def _on_thinking(self, active: bool) -> None:
        if active == self._thinking:
            return
        self._thinking = active
        if self.config.thinking_audio.auto:
            if active:
                self._spawn(self.layers.start_thinking(None, self.config.thinking_audio.layer_over_background,
                                                       auto=True), "thinking-audio")
                self.pacer.wake()
            else:
                self.layers.stop_auto_thinking()
        self._refresh_agent_state()

    # -- views ------------------------------------------------------------------------------

    def snapshot(self, *, full: bool = True) -> SessionSnapshot:
        end = self.close_time if self.close_time is not None else time.time()
        metrics = self.metrics.snapshot(end - self.create_time)
        return SessionSnapshot(
            name=self.name, owner=self.owner, config=self.config, status=self.status,
            agent_state=self.agent_state, user_state=self.user_state, create_time=self.create_time,
            close_time=self.close_time, close_reason=self.close_reason,
            utterances=tuple(u.snapshot() for u in self._recent) if full else (),
            chat_history=tuple(self.chat_history) if full else (),
            metrics=metrics,
            tools=tuple(self.tools),
            audio_stream_attached=self.stream is not None,
            background_audio=self.layers.background_status(),
            thinking_audio=self.layers.thinking_status(),
        )


async def _call_text_hook(hook: Callable[[str], Awaitable[str | None]], text: str) -> str:
    result = hook(text)
    if inspect.isawaitable(result):
        result = await result
    return text if result is None else result


class _SpeakerEvents:
    """The speaker's callbacks, routed to the session."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def utterance_changed(self, utterance: Utterance) -> None:
        self._s._publish_utterance(utterance)

    async def agent_text(self, utterance: Utterance, text: str) -> str:
        if self._s.hooks.on_agent_text is not None:
            text = await _call_text_hook(self._s.hooks.on_agent_text, text)
        self._s.bus.publish(ev.AgentText(utterance.id, text))
        return text

    def speech_started(self, utterance: Utterance) -> None:
        self._s._on_speech_started(utterance)

    def speech_finished(self, utterance: Utterance) -> None:
        self._s._on_speech_finished(utterance)

    def thinking(self, active: bool) -> None:
        self._s._on_thinking(active)

    def warning(self, reason: str, message: str, utterance: Utterance) -> None:
        self._s.bus.publish(ev.SessionWarning(reason, message, utterance.id))

    def tts_first_byte(self, utterance: Utterance, ms: float) -> None:
        self._s.telemetry.tts_first_byte(utterance, ms)
        pending = self._s._reply_turns.get(utterance.id)
        if pending is not None and not pending.tts_ttfb_ms:
            pending.tts_ttfb_ms = ms

    def synthesis_finished(self, utterance: Utterance) -> None:
        self._s.telemetry.synthesis_finished(utterance)


class _BargeInActions:
    """What barge-in does, routed to the session."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def current(self) -> Utterance | None:
        return self._s.speaker.current

    def pause(self, utterance: Utterance) -> None:
        self._s.mixer.pause_speech(fade_ms=100)
        self._s.bus.publish(ev.Interruption("paused", utterance.id, False))
        self._s._refresh_agent_state()

    def resume(self, utterance: Utterance) -> None:
        self._s.mixer.resume_speech(fade_ms=100)
        self._s.bus.publish(ev.Interruption("resumed", utterance.id, False))
        self._s._refresh_agent_state()

    def cut(self) -> None:
        self._s._interrupt(include_queued=False, fade_ms=20, force=False, by_request=False)

    def false_interruption(self, utterance: Utterance) -> None:
        self._s.metrics.false_interruptions += 1
        self._s.telemetry.false_interruption(utterance)


class _ListenerEvents(ListenerCallbacks):
    def __init__(self, session: Session) -> None:
        super().__init__(
            speech_started=session._on_user_speech_started,
            speech_ended=session._on_user_speech_ended,
            transcript=session._on_transcript,
            turn_ended=session._on_user_turn,
        )
