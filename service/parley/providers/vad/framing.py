"""Turning per-frame speech decisions into SPEECH_START / SPEECH_END edges.

Speech starts after `min_speech_ms` of consecutive speech frames and ends
after `min_silence_ms` of consecutive non-speech frames. Reported times are
positions in the input audio: the start is the first speech frame of the run;
the end is the last frame of the run that is still loud, which removes the
frame classifier's own hangover (webrtc keeps saying "speech" for about
100 ms after the voice stops).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from parley.audio._pcm import energy_db
from parley.providers.base import VADEvent, VADEventType, VADStream

FrameClassifier = Callable[[np.ndarray, float], bool]
"""Whether a frame is speech, given the frame and its energy in dB (computed once, here)."""

_EMPTY = np.zeros(0, np.int16)
_UNHEARD = float("-inf")
_TAIL_BELOW_PEAK_DB = 40.0
_TAIL_ABOVE_NOISE_DB = 10.0


class FramedVADStream(VADStream):
    def __init__(
        self,
        classify: FrameClassifier,
        sample_rate: int,
        frame_ms: int,
        min_speech_ms: int,
        min_silence_ms: int,
    ) -> None:
        self._classify = classify
        self._frame = sample_rate * frame_ms // 1000
        self._frame_ms = frame_ms
        self._start_frames = max(1, -(-min_speech_ms // frame_ms))
        self._end_frames = max(1, -(-min_silence_ms // frame_ms))
        self._pending = _EMPTY
        self._index = 0  # frames consumed so far
        self.speaking = False
        self._run = 0  # consecutive frames that disagree with `speaking`
        self._run_start = 0  # first frame of that run
        self._peak_db = _UNHEARD
        self._noise_db = _UNHEARD
        self._last_loud = 0  # last loud frame index of the current speech

    def process(self, pcm: np.ndarray) -> list[VADEvent]:
        if len(pcm) == self._frame and not len(self._pending):  # the usual case: one whole frame per chunk
            event = self._step(pcm)
            return [] if event is None else [event]
        data = np.concatenate([self._pending, pcm.astype(np.int16, copy=False)]) if len(self._pending) else pcm
        events: list[VADEvent] = []
        usable = len(data) - len(data) % self._frame
        for start in range(0, usable, self._frame):
            event = self._step(data[start : start + self._frame])
            if event is not None:
                events.append(event)
        if usable < len(data):
            self._pending = np.array(data[usable:], dtype=np.int16)
        elif len(self._pending):
            self._pending = _EMPTY
        return events

    def _step(self, frame: np.ndarray) -> VADEvent | None:
        index = self._index
        self._index += 1
        energy = energy_db(frame)
        is_speech = self._classify(frame, energy)
        event: VADEvent | None = None
        if is_speech != self.speaking:
            if self._run == 0:
                self._run_start = index
            self._run += 1
        else:
            self._run = 0
        if not self.speaking:
            if not is_speech:
                self._noise_db = energy if self._noise_db == _UNHEARD else 0.95 * self._noise_db + 0.05 * energy
            elif self._run >= self._start_frames:
                self.speaking, self._run = True, 0
                self._peak_db, self._last_loud = _UNHEARD, index
                event = VADEvent(VADEventType.SPEECH_START, self._run_start * self._frame_ms)
        elif self._run >= self._end_frames:
            self.speaking, self._run = False, 0
            event = VADEvent(VADEventType.SPEECH_END, (self._last_loud + 1) * self._frame_ms)
        if self.speaking:
            self._peak_db = max(self._peak_db, energy)
            if is_speech and energy >= self._loud_floor():
                self._last_loud = index
        return event

    @property
    def quiet_ms(self) -> int:
        """While speaking, the non-speech frames so far that may turn out to be the end."""
        return self._run * self._frame_ms if self.speaking else 0

    def _loud_floor(self) -> float:
        return max(self._peak_db - _TAIL_BELOW_PEAK_DB, self._noise_db + _TAIL_ABOVE_NOISE_DB)
