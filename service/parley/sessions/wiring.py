"""How a session's parts tell each other what happened.

Each class here implements one part's callback Protocol with the
collaborators it needs passed in explicitly, so no part reaches into
another's insides and each reaction is in one place:

- `SpeechEvents` (the speaker's SpeakerCallbacks): utterance events, agent
  text, thinking, speech start/end bookkeeping;
- `BargeInEffects` (barge-in's BargeInActions): pausing, resuming and
  cutting the agent's speech;
- `PortEffects` (the audio port's PortEvents): the stream coming and going,
  frames dropped, underruns;
- `listener_callbacks`: the caller's voice, transcripts and turns.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from parley.audio.mixer import Mixer
from parley.chat import ChatMessage, Role
from parley.providers.base import Transcript
from parley.sessions import events as ev
from parley.sessions.barge_in import BargeIn
from parley.sessions.config import ThinkingAudioConfig
from parley.sessions.layers import Layers
from parley.sessions.listener import ListenerCallbacks, UserTurn
from parley.sessions.metrics import SessionMetrics
from parley.sessions.observer import SessionObserver
from parley.sessions.speech import Speaker
from parley.sessions.state_machine import StateMachine
from parley.sessions.states import UserState, UtteranceState
from parley.sessions.stream import AttachedStream
from parley.sessions.turns import Turns
from parley.sessions.utterance import Utterance

Spawn = Callable[[Awaitable[Any], str], None]
TextHook = Callable[[str], Awaitable[str | None]]


async def call_text_hook(hook: Callable[[str], Any], text: str) -> str:
    """An embedder's text hook (async, or a plain function); None keeps the text."""
    result = hook(text)
    if inspect.isawaitable(result):
        result = await result
    return text if result is None else str(result)


class SpeechEvents:
    """What follows from the agent's speech."""

    def __init__(
        self, bus: ev.EventBus, states: StateMachine, turns: Turns, barge_in: BargeIn, observer: SessionObserver,
        metrics: SessionMetrics, history: list[ChatMessage], layers: Layers, thinking_audio: ThinkingAudioConfig,
        spawn: Spawn, on_agent_text: TextHook | None,
    ) -> None:
        self._metrics = metrics
        self._bus = bus
        self._states = states
        self._turns = turns
        self._barge_in = barge_in
        self._observer = observer
        self._history = history
        self._layers = layers
        self._thinking_audio = thinking_audio
        self._spawn = spawn
        self._on_agent_text = on_agent_text

    def utterance_changed(self, utterance: Utterance) -> None:
        self._bus.publish(ev.UtteranceUpdated(utterance.snapshot()))

    async def agent_text(self, utterance: Utterance, text: str) -> str:
        if self._on_agent_text is not None:
            text = await call_text_hook(self._on_agent_text, text)
        self._bus.publish(ev.AgentText(utterance.id, text))
        return text

    def speech_started(self, utterance: Utterance) -> None:
        self._barge_in.agent_started(utterance)
        self._states.refresh()
        self._observer.speech_started(utterance, self._turns.speech_started(utterance.id))

    def speech_finished(self, utterance: Utterance) -> None:
        self._observer.speech_finished(utterance)
        self._turns.forget(utterance.id)
        self._barge_in.utterance_ended(utterance)
        if utterance.add_to_context and utterance.heard_text:
            self._history.append(ChatMessage(
                Role.ASSISTANT, utterance.heard_text, interrupted=utterance.state is UtteranceState.INTERRUPTED
            ))
        self._states.refresh()

    def thinking(self, active: bool) -> None:
        if not self._states.set_thinking(active) or not self._thinking_audio.auto:
            return
        if active:
            self._spawn(self._layers.start_thinking(None, self._thinking_audio.layer_over_background, auto=True),
                        "thinking-audio")
        else:
            self._layers.stop_auto_thinking()

    def warning(self, reason: str, message: str, utterance: Utterance) -> None:
        self._bus.publish(ev.SessionWarning(reason, message, utterance.id))

    def tts_first_byte(self, utterance: Utterance, ms: float) -> None:
        self._observer.tts_first_byte(utterance, ms)
        self._turns.first_byte(utterance.id, ms)

    def synthesis_finished(self, utterance: Utterance) -> None:
        self._observer.synthesis_finished(utterance)

    def interrupted(self, utterance: Utterance, by_request: bool) -> None:
        """Cut by a call or by the caller: counted and announced if any of it was heard (clients drop the rest)."""
        self._observer.interrupted(utterance, by_request)
        if utterance.state is UtteranceState.INTERRUPTED and utterance.start_time is not None:
            self._metrics.interruptions += 1
            self._bus.publish(ev.Interruption("interrupted", utterance.id, by_request))
            self._bus.publish(ev.ClearAudio(utterance.id))


class BargeInEffects:
    """What barge-in does to the agent's speech."""

    PAUSE_FADE_MS = 100

    def __init__(
        self, current: Callable[[], Utterance | None], mixer: Mixer, bus: ev.EventBus, states: StateMachine,
        metrics: SessionMetrics, observer: SessionObserver, cut: Callable[[], None],
    ) -> None:
        self._current = current
        self._mixer = mixer
        self._bus = bus
        self._states = states
        self._metrics = metrics
        self._observer = observer
        self._cut = cut

    def current(self) -> Utterance | None:
        return self._current()

    def pause(self, utterance: Utterance) -> None:
        self._mixer.pause_speech(fade_ms=self.PAUSE_FADE_MS)
        self._bus.publish(ev.Interruption("paused", utterance.id, False))
        self._states.refresh()

    def resume(self, utterance: Utterance) -> None:
        self._mixer.resume_speech(fade_ms=self.PAUSE_FADE_MS)
        self._bus.publish(ev.Interruption("resumed", utterance.id, False))
        self._states.refresh()

    def cut(self) -> None:
        self._cut()

    def false_interruption(self, utterance: Utterance) -> None:
        self._metrics.false_interruptions += 1
        self._observer.false_interruption(utterance)


class PortEffects:
    """What follows from the audio port: the stream coming and going, frames lost."""

    def __init__(
        self, speaker: Speaker, bus: ev.EventBus, states: StateMachine, metrics: SessionMetrics,
        observer: SessionObserver, attached: Callable[[], None], abandoned: Callable[[], None],
    ) -> None:
        self._speaker = speaker
        self._bus = bus
        self._states = states
        self._metrics = metrics
        self._observer = observer
        self._attached = attached
        self._abandoned = abandoned

    def frame_mixed(self) -> None:
        self._speaker.on_frame()

    def has_speech(self) -> bool:
        return self._speaker.busy

    def stream_attached(self, stream: AttachedStream) -> None:
        self._bus.add_sink(stream.outbox.put_event)
        self._states.set_user(UserState.LISTENING)
        self._attached()

    def stream_detached(self, stream: AttachedStream) -> None:
        self._bus.remove_sink(stream.outbox.put_event)
        self._states.set_user(UserState.IDLE)

    def stream_abandoned(self) -> None:
        self._abandoned()

    def frames_dropped(self, count: int, total: int, announce: int) -> None:
        if count:
            self._metrics.frames_dropped += count
            self._observer.frames_dropped(count)
        if announce:
            self._bus.publish(ev.FramesDropped(announce, total))

    def underrun(self, frames: int) -> None:
        self._metrics.underruns += frames
        self._observer.underruns(frames)


def listener_callbacks(
    states: StateMachine, barge_in: BargeIn, bus: ev.EventBus, observer: SessionObserver,
    has_stream: Callable[[], bool], turn_ended: Callable[[UserTurn], None],
) -> ListenerCallbacks:
    """What follows from the caller's voice, words and turns."""

    def speech_started() -> None:
        observer.user_speech_started()
        states.set_user(UserState.SPEAKING)
        barge_in.speech_started()

    def speech_ended(when: float) -> None:
        states.set_user(UserState.LISTENING if has_stream() else UserState.IDLE)
        barge_in.speech_ended(when)

    def transcript(t: Transcript) -> None:
        if t.text.strip():
            bus.publish(ev.TranscriptEvent(t.text, t.is_final, tuple(t.words)))
        barge_in.heard_words(len(t.text.split()), final=t.is_final)

    def ended(turn: UserTurn) -> None:
        observer.user_turn(turn)
        turn_ended(turn)

    def audio_dropped(ms: int) -> None:
        bus.publish(ev.SessionWarning(
            "CALLER_AUDIO_DROPPED", f"speech recognition fell behind: {ms} ms of the caller's audio were dropped"))

    return ListenerCallbacks(speech_started=speech_started, speech_ended=speech_ended, transcript=transcript,
                             turn_ended=ended, audio_dropped=audio_dropped)
