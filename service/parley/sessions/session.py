"""One agent session: the facade the servicer, the registry and embedders call.

Behind it, parts with one job each (wired together in `wiring`):
`AudioPort` (the attached stream, caller audio in, frames out), `Speaker`
(the utterance queue and play-out), `Listener` (VAD, STT, end of turn),
`BargeIn` (the caller's voice against the agent's), `StateMachine` (agent
and caller states, the wake-up timer), `Turns` (replies to caller turns and
their latencies), `UtteranceStore`, `Layers` (background and thinking
audio) and `ToolRunner`. The session owns them all, its event bus and its
tasks; `close()` releases every one. Nothing here knows about gRPC.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any

from parley.audio.mixer import Mixer
from parley.chat import ChatMessage, Role, ToolCall, ToolSpec
from parley.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from parley.logs import SessionLogger
from parley.mcp.toolbox import McpToolbox
from parley.providers.workers import Workers
from parley.sessions import events as ev
from parley.sessions.audio_port import AudioPort, PortLimits
from parley.sessions.barge_in import BargeIn
from parley.sessions.clock import LOOP_CLOCK, Clock
from parley.sessions.config import AgentAction, AudioLayerConfig, SessionConfig, check_text
from parley.sessions.frame_clock import FrameClock
from parley.sessions.idempotency import RequestLog
from parley.sessions.layers import Layers, LayerStatus
from parley.sessions.limits import SessionLimits
from parley.sessions.listener import Listener, UserTurn
from parley.sessions.metrics import SessionMetrics
from parley.sessions.observer import NO_OBSERVER, ObserverFactory, SessionObserver
from parley.sessions.ratelimit import TokenBucket
from parley.sessions.recording import SessionRecording
from parley.sessions.replies import ReplyStats, generate_reply
from parley.sessions.session_providers import SessionProviders
from parley.sessions.session_types import BusyPolicy, SessionHooks, SessionSnapshot
from parley.sessions.speech import Speaker, SpeechJob
from parley.sessions.state_machine import StateMachine
from parley.sessions.states import SessionStatus, UtteranceSource, UtteranceState
from parley.sessions.stream import AttachedStream, StreamSpec
from parley.sessions.stream_slots import StreamSlots
from parley.sessions.tasks import BackgroundTasks
from parley.sessions.tools import ToolCalls, ToolRunner
from parley.sessions.turns import PendingTurn, Turns
from parley.sessions.utterance import Utterance, UtteranceSnapshot, UtteranceStore
from parley.sessions.wiring import BargeInEffects, PortEffects, SpeechEvents, call_text_hook, listener_callbacks

log = logging.getLogger("parley.session")

SPEECH_BUFFER_MS = 1000  # speech in the mixer's queue, per session (the speaker holds the rest)


class Session:
    """Server-side state of one agent session."""

    def __init__(
        self, name: str, owner: str, config: SessionConfig, *, idle_ttl_seconds: float, workers: Workers,
        frame_clock: FrameClock, stream_slots: StreamSlots | None = None,
        limits: SessionLimits = SessionLimits(),  # noqa: B008 - frozen, shared safely
        hooks: SessionHooks | None = None,
        observers: ObserverFactory | None = None, clock: Clock = LOOP_CLOCK,
    ) -> None:
        self.name, self.owner, self.config = name, owner, config
        self.idle_ttl_seconds = idle_ttl_seconds
        self.limits = limits
        self.clock = clock
        hooks = hooks or SessionHooks()
        self._hooks = hooks
        self.status = SessionStatus.ACTIVE
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
        self.mcp = McpToolbox(config.mcp_servers, allow_stdio=limits.allow_mcp_stdio,
                              on_lost=lambda why, message: self._warn(why, message, pin=False))
        self.request_rate = TokenBucket(limits.max_requests_per_second, limits.request_burst, clock=clock)
        self._requests = RequestLog(1000)
        self.utterances = UtteranceStore(limits.recent_utterances)
        self.last_activity = clock.now()
        self._closing: asyncio.Task[None] | None = None
        self._tasks = BackgroundTasks(name)
        self._greeted = False
        self.mixer = Mixer(config.output_format.sample_rate_hz, speech_limit_ms=SPEECH_BUFFER_MS)
        self.layers = Layers(self.mixer, config, workers, audio_dir=limits.audio_dir,
                             max_file_bytes=limits.max_layer_file_bytes)
        self.providers = SessionProviders.build(config, workers, stall_seconds=limits.provider_stall_seconds)
        self.observer: SessionObserver = (
            observers.open_session(self.providers.describe(name, config)) if observers else NO_OBSERVER)
        self.recording = (
            SessionRecording(limits.recording_dir, name.rsplit("/", 1)[-1], clock,
                             caller_rate=self.providers.stt.sample_rate, agent_rate=self.mixer.sample_rate,
                             max_seconds=limits.max_recording_seconds)
            if config.recording.enabled else None)
        self._run_tool = ToolRunner(self.tools, self.tool_calls, self.mcp, self.bus, config.tool_timeout_seconds)
        self.turns = Turns(clock, self.metrics, self.bus)
        self._wire(frame_clock, stream_slots, hooks)

    def _wire(self, frame_clock: FrameClock, stream_slots: StreamSlots | None, hooks: SessionHooks) -> None:
        def current() -> Utterance | None:
            return self.speaker.current

        def audible() -> bool:
            playing = current()
            return playing is not None and playing.state is UtteranceState.SPEAKING and self.barge_in.paused is None

        self.states = StateMachine(self.bus, audible, lambda: self.speaker.busy, self.clock,
                                   wake_up_after=self.config.wake_up.after_seconds, on_wake_up=self._on_wake_up)
        def cut() -> None:
            self._interrupt(include_queued=False, fade_ms=20, force=False, by_request=False)

        effects = BargeInEffects(current, self.mixer, self.bus, self.states, self.metrics, self.observer, cut)
        self.barge_in = BargeIn(self.config.interruption, effects, self.clock)
        self._speech_events = SpeechEvents(
            self.bus, self.states, self.turns, self.barge_in, self.observer, self.metrics, self.chat_history,
            self.layers, self.config.thinking_audio, self._tasks.spawn, hooks.on_agent_text)
        self.speaker = Speaker(self.providers.tts, self.mixer, self._speech_events,
                               max_queued=self.limits.max_queued_utterances)
        port_effects = PortEffects(self.speaker, self.bus, self.states, self.metrics, self.observer,
                                   attached=self._on_stream_attached,
                                   abandoned=lambda: self._tasks.spawn(self.close("audio stream did not come back"),
                                                                 "reattach-close"))
        self.port = AudioPort(
            self.mixer, frame_clock, self.clock,
            PortLimits(self.limits.max_chunk_bytes, self.limits.stream_frame_buffer), port_effects,
            self._make_listener, reattach_window=self.config.reattach_window_seconds, slots=stream_slots,
            on_user_audio=hooks.on_user_audio, on_agent_audio=hooks.on_agent_audio, tap=self.recording)

    def _make_listener(self) -> Listener:
        callbacks = listener_callbacks(self.states, self.barge_in, self.bus, self.observer,
                                       lambda: self.port.stream is not None, self._on_user_turn)
        p = self.providers
        return Listener(p.vad, p.stt, p.turn_detector, self.config.turn_detection, callbacks, self.clock)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self.tools.extend(await self.mcp.open(self.tools, lambda why, message: self._warn(why, message, pin=True)))
        if len(self.tools) > self.limits.max_tools:
            raise ResourceExhausted(
                "max_tools", f"at most {self.limits.max_tools} tools per session, MCP tools included"
            )
        await self.layers.check_configured()
        if self.config.background_audio.play_on_start:
            await self.layers.play_background(None, self.config.background_audio.override_thinking)
            self.port.wake()
        self.states.started()
        self.log.info("session started")

    def _warn(self, reason: str, message: str, *, pin: bool) -> None:
        """`pin`: a start-up warning reaches every later watcher and stream (no one watches before Start returns)."""
        self.log.warning(message, extra={"reason": reason})
        (self.bus.pin if pin else self.bus.publish)(ev.SessionWarning(reason, message))

    async def close(self, reason: str = "closed by client", farewell: AgentAction | None = None,
                    farewell_timeout: float = 10.0) -> None:
        """End the session; concurrent and repeated calls wait for the same close."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(reason, farewell, farewell_timeout))
        await asyncio.shield(self._closing)

    async def _close(self, reason: str, farewell: AgentAction | None, farewell_timeout: float) -> None:
        if farewell is not None and self.status is SessionStatus.ACTIVE:
            self._interrupt(include_queued=True, fade_ms=50, force=True, by_request=True)
            utterance = self._start_action(farewell, UtteranceSource.FAREWELL)
            try:
                await asyncio.wait_for(asyncio.shield(utterance.done), farewell_timeout)
            except TimeoutError:
                self.log.warning("farewell timed out", extra={"utterance": utterance.id})
        self.states.closing()
        self.status, self.close_time, self.close_reason = SessionStatus.CLOSED, time.time(), reason
        self.barge_in.close()
        self.tool_calls.cancel_all()
        await self.speaker.aclose()
        if self.port.listener is not None:
            await self.port.listener.aclose()
        await self._tasks.cancel()
        self.layers.close()
        await self.mcp.aclose()
        await self.providers.llm.aclose()
        self.bus.publish(ev.SessionClosed(reason))
        self.port.close()
        if self.recording is not None:
            self.recording.close()
        self.bus.close()
        self.observer.close(reason, self.close_time - self.create_time)
        self.log.info("session closed", extra={"reason": reason})

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
        self.last_activity = self.clock.now()

    def reapable(self, now: float) -> bool:
        """Idle past its TTL: no call and no attached audio stream for that long."""
        return self.port.stream is None and now - self.last_activity > self.idle_ttl_seconds

    async def idempotent(self, method: str, request_id: str, action: Callable[[], Awaitable[Any]],
                         fingerprint: Hashable = None) -> Any:
        """Run a mutating call once per request id (`fingerprint`: what makes a reused id a different request)."""
        return await self._requests.run((method, request_id) if request_id else None, action, fingerprint)

    # -- speaking ----------------------------------------------------------------

    def say(self, text: str, *, interruptible: bool = True, add_to_context: bool = True,
            source: UtteranceSource = UtteranceSource.SAY) -> Utterance:
        """Queue a text to speak; returns its handle at once."""
        if source is not UtteranceSource.FAREWELL:  # the farewell is said while the session closes
            self.ensure_active()
        check_text(text, "text", required=True, limit=self.limits.max_text_chars)
        utterance = self.utterances.new(source, text, interruptible=interruptible, add_to_context=add_to_context)

        async def pieces() -> AsyncIterator[str]:
            yield text

        self._enqueue(SpeechJob(utterance, pieces))
        return utterance

    def reply(self, *, instructions: str = "", user_text: str = "", busy: BusyPolicy = BusyPolicy.QUEUE,
              interruptible: bool = True, source: UtteranceSource = UtteranceSource.REPLY,
              turn: PendingTurn | None = None) -> Utterance:
        """Queue an answer from the language model; returns its handle at once."""
        if source is not UtteranceSource.FAREWELL:
            self.ensure_active()
        check_text(instructions, "instructions", required=False, limit=self.limits.max_text_chars)
        check_text(user_text, "user_text", required=False, limit=self.limits.max_text_chars)
        if self.speaker.busy:
            if busy is BusyPolicy.REJECT:
                raise FailedPrecondition("the agent is busy and busy_policy is REJECT", reason="AGENT_BUSY")
            if busy is BusyPolicy.INTERRUPT:
                self._interrupt(include_queued=True, fade_ms=20, force=False, by_request=True)
        utterance = self.utterances.new(source, "", interruptible=interruptible, add_to_context=True)
        stats = turn.stats if turn is not None else ReplyStats()
        if turn is not None:
            self.turns.answered_by(utterance.id, turn)
        if user_text:
            self.chat_history.append(ChatMessage(Role.USER, user_text))

        async def pieces() -> AsyncIterator[str]:
            async for piece in generate_reply(self.providers.llm, self.chat_history, self.tools, self._run_tool,
                                              instructions=instructions, stats=stats,
                                              trace=self.observer.reply(utterance)):
                yield piece

        self._enqueue(SpeechJob(utterance, pieces, is_reply=True))
        return utterance

    def _enqueue(self, job: SpeechJob) -> None:
        self.speaker.enqueue(job)
        self.observer.agent_turn(job.utterance, answers_user=self.turns.answers_a_turn(job.utterance.id))
        self.port.wake()
        self._speech_events.utterance_changed(job.utterance)
        self.states.refresh()

    def _start_action(self, action: AgentAction, source: UtteranceSource) -> Utterance:
        if action.say_text is not None:
            return self.say(action.say_text, source=source)
        return self.reply(instructions=action.reply_instructions or "", source=source)

    async def wait_utterance(self, utterance_id: str) -> UtteranceSnapshot:
        return await asyncio.shield(self.utterances.get(utterance_id).done)

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
            self._speech_events.interrupted(utterance, by_request)
        return cut

    # -- the caller's turns ---------------------------------------------------------

    def _on_user_turn(self, turn: UserTurn) -> None:
        self._tasks.spawn(self._answer(turn), "user-turn")

    async def _answer(self, turn: UserTurn) -> None:
        text = turn.text
        if self._hooks.on_user_transcript is not None:
            text = await call_text_hook(self._hooks.on_user_transcript, text)
        if self.closed or not text.strip():
            return
        if not self.config.auto_reply:
            self.chat_history.append(ChatMessage(Role.USER, text))
            return
        # Replies to earlier turns that nobody has heard yet give way: this turn's reply answers them all.
        self.speaker.cancel_unheard(self.turns.unheard_replies(), reason="SUPERSEDED")
        self.reply(user_text=text, turn=PendingTurn(turn, ReplyStats()))

    def _on_wake_up(self, idle_seconds: float) -> None:
        if self.closed or self.config.wake_up.action is None:
            return
        self.bus.publish(ev.WakeUp(idle_seconds))
        self._start_action(self.config.wake_up.action, UtteranceSource.WAKE_UP)

    # -- tools and layers ------------------------------------------------------------

    def submit_tool_result(self, call_id: str, result: str, is_error: bool) -> ToolCall:
        self.ensure_active()
        check_text(result, "error" if is_error else "result", required=False, limit=self.limits.max_text_chars)
        return self.tool_calls.submit(call_id, result, is_error)

    async def play_background(self, layer: AudioLayerConfig | None, override_thinking: bool) -> LayerStatus:
        self.ensure_active()
        status = await self.layers.play_background(layer, override_thinking)
        self.port.wake()
        return status

    def stop_background(self, fade_ms: int) -> LayerStatus:
        self.ensure_active()
        return self.layers.stop_background(fade_ms)

    async def start_thinking(self, layer: AudioLayerConfig | None, layer_over_background: bool) -> LayerStatus:
        self.ensure_active()
        status = await self.layers.start_thinking(layer, layer_over_background)
        self.port.wake()
        return status

    def stop_thinking(self, fade_ms: int) -> LayerStatus:
        self.ensure_active()
        return self.layers.stop_thinking(fade_ms)

    # -- audio stream ------------------------------------------------------------------

    def attach_stream(self, spec: StreamSpec, *, take_over: bool) -> AttachedStream:
        self.ensure_active()
        stream = self.port.attach(spec, self.config.output_format.sample_rate_hz, take_over=take_over)
        self.touch()
        return stream

    def _on_stream_attached(self) -> None:
        if not self._greeted and self.config.greeting is not None:
            self._greeted = True
            self._start_action(self.config.greeting, UtteranceSource.GREETING)

    def detach_stream(self, stream: AttachedStream) -> None:
        self.port.detach(stream)
        self.touch()

    def push_audio(self, stream: AttachedStream, pcm: bytes) -> None:
        """The caller's audio in the stream's input format.

        No `touch()` per chunk: a session with a stream attached is never
        reaped, and detaching touches it.
        """
        self.port.push(stream, pcm)

    # -- views ------------------------------------------------------------------------------

    def snapshot(self, *, full: bool = True) -> SessionSnapshot:
        end = self.close_time if self.close_time is not None else time.time()
        return SessionSnapshot(
            name=self.name, owner=self.owner, config=self.config, status=self.status,
            agent_state=self.states.agent, user_state=self.states.user, create_time=self.create_time,
            close_time=self.close_time, close_reason=self.close_reason,
            utterances=self.utterances.recent() if full else (),
            chat_history=tuple(self.chat_history) if full else (),
            metrics=self.metrics.snapshot(end - self.create_time), tools=tuple(self.tools),
            audio_stream_attached=self.port.stream is not None,
            background_audio=self.layers.background_status(), thinking_audio=self.layers.thinking_status(),
        )
