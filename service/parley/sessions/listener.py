"""The caller's side: voice activity, transcripts and the end of each turn.

Audio arrives at 16 kHz mono. Voice activity runs inline (it is cheap); the
speech recognizer runs in its own task behind a bounded queue, so a slow
recognizer never holds up the audio stream.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from parley.providers.base import STT, VAD, Transcript, TurnDetector, VADEventType
from parley.sessions.config import TurnDetectionConfig


@dataclass(frozen=True)
class UserTurn:
    text: str
    speech_end: float  # monotonic time the user stopped speaking
    stt_latency_ms: float
    end_of_turn_delay_ms: float


@dataclass
class ListenerCallbacks:
    speech_started: Callable[[], None]
    speech_ended: Callable[[float], None]
    transcript: Callable[[Transcript], None]
    turn_ended: Callable[[UserTurn], None]


_END = object()  # marks the end of one user utterance in the recognizer queue


class Listener:
    """Feeds one caller's audio through VAD, STT and endpointing.

    Overflow policy: the recognizer queue holds at most `max_queued_seconds`
    of audio; older audio is dropped (and counted) if recognition falls behind.
    """

    def __init__(
        self, vad: VAD, stt: STT, turn_detector: TurnDetector, turns: TurnDetectionConfig,
        callbacks: ListenerCallbacks, *, preroll_ms: int = 300, max_queued_seconds: float = 10.0,
    ) -> None:
        self.sample_rate = stt.sample_rate
        self._vad = vad.stream()
        self._stt = stt.stream()
        self._turn_detector = turn_detector
        self._turns = turns
        self._cb = callbacks
        self._preroll: deque[np.ndarray] = deque()
        self._preroll_samples = 0
        self._preroll_limit = self.sample_rate * preroll_ms // 1000
        self._queue: deque[object] = deque()
        self._queued_samples = 0
        self._max_queued = int(max_queued_seconds * self.sample_rate)
        self._wakeup = asyncio.Event()
        self.dropped_samples = 0
        self._position = 0  # samples received
        self._speech_end: float | None = None
        self._turn_text: list[str] = []
        self._turn_timer: asyncio.TimerHandle | None = None
        self._stt_latency_ms = 0.0
        self._task = asyncio.create_task(self._recognize(), name="listener-stt")

    @property
    def speaking(self) -> bool:
        return self._vad.speaking

    def feed(self, pcm: np.ndarray) -> None:
        """Take 16 kHz mono int16 audio that just arrived."""
        arrival = time.monotonic()
        end_position = self._position + len(pcm)
        was_speaking = self._vad.speaking
        events = self._vad.process(pcm)
        if any(e.type is VADEventType.SPEECH_START for e in events):
            for chunk in self._preroll:  # the words' first syllable came before the VAD noticed
                self._enqueue(chunk)
            self._preroll.clear()
            self._preroll_samples = 0
        if was_speaking or self._vad.speaking or events:
            self._enqueue(pcm)
        else:
            self._remember_preroll(pcm)
        for event in events:
            if event.type is VADEventType.SPEECH_START:
                self._on_speech_start()
            else:
                lag = max(0.0, (end_position - event.time_ms * self.sample_rate / 1000) / self.sample_rate)
                self._on_speech_end(arrival - lag)
        self._position = end_position

    async def aclose(self) -> None:
        self._cancel_turn_timer()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._stt.aclose()

    # -- voice activity ---------------------------------------------------------

    def _on_speech_start(self) -> None:
        self._cancel_turn_timer()
        self._speech_end = None
        self._cb.speech_started()

    def _on_speech_end(self, when: float) -> None:
        self._speech_end = when
        self._queue.append(_END)
        self._wakeup.set()
        self._cb.speech_ended(when)

    def _remember_preroll(self, pcm: np.ndarray) -> None:
        self._preroll.append(pcm)
        self._preroll_samples += len(pcm)
        while self._preroll_samples - len(self._preroll[0]) >= self._preroll_limit:
            self._preroll_samples -= len(self._preroll.popleft())

    def _enqueue(self, pcm: np.ndarray) -> None:
        self._queue.append(pcm)
        self._queued_samples += len(pcm)
        while self._queued_samples > self._max_queued:
            oldest = next(i for i, item in enumerate(self._queue) if item is not _END)
            dropped = self._queue[oldest]
            del self._queue[oldest]
            self._queued_samples -= len(dropped)  # type: ignore[arg-type]
            self.dropped_samples += len(dropped)  # type: ignore[arg-type]
        self._wakeup.set()

    # -- recognition ------------------------------------------------------------

    async def _recognize(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                item = self._queue.popleft()
                if item is _END:
                    final = await self._stt.finish()
                    self._on_final(final)
                    continue
                self._queued_samples -= len(item)  # type: ignore[arg-type]
                interim = await self._stt.push(item)  # type: ignore[arg-type]
                if interim is not None and interim.text:
                    self._cb.transcript(interim)

    def _on_final(self, final: Transcript) -> None:
        if self._speech_end is not None:
            self._stt_latency_ms = (time.monotonic() - self._speech_end) * 1000
        if not final.text.strip():
            return
        self._cb.transcript(final)
        self._turn_text.append(final.text.strip())
        if self._speech_end is None:  # the user is already speaking again
            return
        text = " ".join(self._turn_text)
        delay = self._turn_detector.endpoint_delay(
            text, self._turns.min_endpointing_delay_seconds, self._turns.max_endpointing_delay_seconds
        )
        remaining = max(0.0, self._speech_end + delay - time.monotonic())
        self._cancel_turn_timer()
        self._turn_timer = asyncio.get_running_loop().call_later(remaining, self._end_turn)

    def _end_turn(self) -> None:
        self._turn_timer = None
        if self._speech_end is None or not self._turn_text:
            return
        turn = UserTurn(
            text=" ".join(self._turn_text),
            speech_end=self._speech_end,
            stt_latency_ms=self._stt_latency_ms,
            end_of_turn_delay_ms=(time.monotonic() - self._speech_end) * 1000,
        )
        self._turn_text.clear()
        self._cb.turn_ended(turn)

    def _cancel_turn_timer(self) -> None:
        if self._turn_timer is not None:
            self._turn_timer.cancel()
            self._turn_timer = None
