"""The caller's side: voice activity, transcripts and the end of each turn.

Audio arrives at 16 kHz mono. Voice activity runs inline (it is cheap); the
speech recognizer runs in a task of its own behind a bounded queue, so a
slow recognizer never holds up the audio stream. That task exists only
while there is speech to recognize: a listening session with a silent
caller has none.

The final transcript of a stretch of speech is asked for as soon as the
voice goes quiet, not after the VAD's hangover has confirmed the end: the
recognizer works while the hangover runs. If the voice comes back within
the hangover, the recognizer goes on with the new audio and the turn's text
is the finals joined. The turn ends once the VAD confirmed the end, every
final is in, and the turn detector's endpointing delay (counted from the end
of the voice) has passed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from parley.cancelling import cancel_and_wait
from parley.providers.base import STT, VAD, Transcript, TurnDetector, VADEventType
from parley.sessions.clock import Clock, Timer
from parley.sessions.config import TurnDetectionConfig

RECOGNIZE_BATCH_MS = 100  # audio is handed to the recognizer in batches (a final never waits for one)
EARLY_FINAL_MS = 150  # quiet voice this long asks for the final transcript (the VAD's hangover runs on)


@dataclass(frozen=True)
class UserTurn:
    text: str
    speech_end: float  # clock time the user stopped speaking
    stt_latency_ms: float
    end_of_turn_delay_ms: float


@dataclass
class ListenerCallbacks:
    speech_started: Callable[[], None]
    speech_ended: Callable[[float], None]
    transcript: Callable[[Transcript], None]  # every interim with text, and every final (empty ones too)
    turn_ended: Callable[[UserTurn], None]
    audio_dropped: Callable[[int], None]  # recognition fell behind: this many ms of the caller's audio were lost


_END = object()  # marks the end of one stretch of speech in the recognizer queue


class Listener:
    """Feeds one caller's audio through VAD, STT and endpointing.

    Overflow policy: the recognizer queue holds at most `max_queued_seconds`
    of audio; older audio is dropped if recognition falls behind, counted in
    `dropped_samples` and reported (once per spell of falling behind).
    """

    def __init__(
        self, vad: VAD, stt: STT, turn_detector: TurnDetector, turns: TurnDetectionConfig,
        callbacks: ListenerCallbacks, clock: Clock, *, preroll_ms: int = 300, max_queued_seconds: float = 10.0,
    ) -> None:
        self.sample_rate = stt.sample_rate
        self._vad = vad.stream()
        self._stt = stt.stream()
        self._turn_detector = turn_detector
        self._turns = turns
        self._cb = callbacks
        self._clock = clock
        self._preroll: deque[np.ndarray] = deque()
        self._preroll_samples = 0
        self._preroll_limit = self.sample_rate * preroll_ms // 1000
        self._queue: deque[object] = deque()
        self._queued_samples = 0
        self._max_queued = int(max_queued_seconds * self.sample_rate)
        self._batch = self.sample_rate * RECOGNIZE_BATCH_MS // 1000
        self._task: asyncio.Task[None] | None = None
        self.dropped_samples = 0
        self._dropping = False
        self._position = 0  # samples received
        self._finalized = False  # the final of the current stretch is asked for; quiet audio is held back
        self._finals_pending = 0  # finals asked for and not yet in
        self._final_at = 0.0
        self._speech_end: float | None = None
        self._turn_text: list[str] = []
        self._turn_timer: Timer | None = None

    @property
    def speaking(self) -> bool:
        return self._vad.speaking

    def feed(self, pcm: np.ndarray) -> None:
        """Take 16 kHz mono int16 audio that just arrived."""
        end_position = self._position + len(pcm)
        was_speaking = self._vad.speaking
        events = self._vad.process(pcm)
        if not (events or was_speaking or self._vad.speaking):  # a quiet line stays quiet: the usual chunk
            self._remember_preroll(pcm)
            self._position = end_position
            return
        arrival = self._clock.now()
        if events and any(e.type is VADEventType.SPEECH_START for e in events):
            self._flush_preroll()  # the words' first syllable came before the VAD noticed
        if self._vad.speaking and self._vad.quiet_ms == 0 and self._finalized:
            self._finalized = False  # the voice came back within the hangover
            self._flush_preroll()
        if (was_speaking or self._vad.speaking or events) and not self._finalized:
            self._enqueue(pcm)
        else:
            self._remember_preroll(pcm)
        for event in events:
            if event.type is VADEventType.SPEECH_START:
                self._on_speech_start()
            else:
                lag = max(0.0, (end_position - event.time_ms * self.sample_rate / 1000) / self.sample_rate)
                self._on_speech_end(arrival - lag)
        if self._vad.speaking and self._vad.quiet_ms >= EARLY_FINAL_MS and not self._finalized:
            self._ask_final()
        self._position = end_position

    async def aclose(self) -> None:
        self._cancel_turn_timer()
        self._queue.clear()
        if self._task is not None:
            await cancel_and_wait([self._task])
        await self._stt.aclose()

    # -- voice activity ---------------------------------------------------------

    def _on_speech_start(self) -> None:
        self._cancel_turn_timer()
        self._speech_end = None
        self._finalized = False
        self._cb.speech_started()

    def _on_speech_end(self, when: float) -> None:
        self._speech_end = when
        if not self._finalized:
            self._ask_final()
        self._finalized = False
        self._cb.speech_ended(when)
        self._schedule_turn_end()

    def _ask_final(self) -> None:
        self._finalized = True
        self._finals_pending += 1
        self._queue.append(_END)
        self._recognize_now()

    def _flush_preroll(self) -> None:
        for chunk in self._preroll:
            self._enqueue(chunk)
        self._preroll.clear()
        self._preroll_samples = 0

    def _remember_preroll(self, pcm: np.ndarray) -> None:
        self._preroll.append(pcm)
        self._preroll_samples += len(pcm)
        while self._preroll_samples - len(self._preroll[0]) >= self._preroll_limit:
            self._preroll_samples -= len(self._preroll.popleft())

    def _enqueue(self, pcm: np.ndarray) -> None:
        self._queue.append(pcm)
        self._queued_samples += len(pcm)
        while self._queued_samples > self._max_queued:
            oldest = next(i for i, item in enumerate(self._queue) if isinstance(item, np.ndarray))
            dropped = self._queue[oldest]
            assert isinstance(dropped, np.ndarray)
            del self._queue[oldest]
            self._queued_samples -= len(dropped)
            self.dropped_samples += len(dropped)
            if not self._dropping:
                self._dropping = True
                self._cb.audio_dropped(len(dropped) * 1000 // self.sample_rate)
        if self._queued_samples >= self._batch:
            self._recognize_now()

    # -- recognition ------------------------------------------------------------

    def _recognize_now(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._recognize(), name="listener-stt")

    async def _recognize(self) -> None:
        """Drain the queue, then end (the next batch or final starts a new task)."""
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, np.ndarray):
                self._queued_samples -= len(item)
                if self._dropping and self._queued_samples < self._max_queued // 2:
                    self._dropping = False  # caught up: the next loss is reported again
                interim = await self._stt.push(item, interim=not self._finals_pending)
                if interim is not None and interim.text:
                    self._cb.transcript(interim)
                continue
            final = await self._stt.finish()
            self._on_final(final)

    def _on_final(self, final: Transcript) -> None:
        self._finals_pending -= 1
        self._final_at = self._clock.now()
        if final.text.strip():
            self._turn_text.append(final.text.strip())
        self._cb.transcript(final)
        self._schedule_turn_end()

    # -- end of turn --------------------------------------------------------------

    def _schedule_turn_end(self) -> None:
        """Once the voice ended and every final is in, wait out the endpointing delay."""
        if self._speech_end is None or self._finals_pending or not self._turn_text:
            return
        text = " ".join(self._turn_text)
        delay = self._turn_detector.endpoint_delay(
            text, self._turns.min_endpointing_delay_seconds, self._turns.max_endpointing_delay_seconds
        )
        self._cancel_turn_timer()
        self._turn_timer = self._clock.call_later(self._speech_end + delay - self._clock.now(), self._end_turn)

    def _end_turn(self) -> None:
        self._turn_timer = None
        if self._speech_end is None or not self._turn_text:
            return
        now = self._clock.now()
        turn = UserTurn(
            text=" ".join(self._turn_text),
            speech_end=self._speech_end,
            stt_latency_ms=max(0.0, self._final_at - self._speech_end) * 1000,
            end_of_turn_delay_ms=(now - self._speech_end) * 1000,
        )
        self._turn_text.clear()
        self._cb.turn_ended(turn)

    def _cancel_turn_timer(self) -> None:
        if self._turn_timer is not None:
            self._turn_timer.cancel()
            self._turn_timer = None
