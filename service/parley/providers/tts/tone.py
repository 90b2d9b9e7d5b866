"""Stand-in TTS for engine tests and capacity benchmarks: not speech.

Renders each character as a fixed-pitch tone (spaces as silence), so the
audio's length is a known function of the text, with no engine to load.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from parley.providers.base import TTS, SpeechChunk
from parley.providers.options import Opt
from parley.providers.stand_in_faults import Fault
from parley.providers.workers import Workers

OPTIONS = {
    "sample_rate": Opt(int, 16000, choices=(8000, 16000, 22050, 24000, 48000)),
    "ms_per_char": Opt(int, 60, min=1, max=1000),
    "frequency": Opt(float, 440.0, min=20.0, max=4000.0),
    "amplitude": Opt(int, 8000, min=0, max=32767),
    "fault_word": Opt(str, "", help="a text containing this word meets `fault` (to test failure handling)"),
    "fault": Opt(str, "raise", choices=("raise", "hang"), help="raise: crash; hang: never yield again"),
}


class ToneTTS(TTS):
    name = "tone"

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self.sample_rate = options["sample_rate"]
        self._char_samples = self.sample_rate * options["ms_per_char"] // 1000
        t = np.arange(self._char_samples) / self.sample_rate
        self._tone = (options["amplitude"] * np.sin(2 * np.pi * options["frequency"] * t)).astype(np.int16)
        self._silence = np.zeros(self._char_samples, np.int16)
        self._fault = Fault(options["fault_word"], options["fault"])

    def duration_ms(self, text: str) -> int:
        """Length of the audio synthesize(text) yields."""
        return len(text) * self._char_samples * 1000 // self.sample_rate

    async def synthesize_timed(self, text: str) -> AsyncIterator[SpeechChunk]:
        await self._fault.check(text)
        word = 0
        for index, token in enumerate(text.split(" ")):
            if index:
                yield SpeechChunk(self._silence.copy())
            if token:
                yield SpeechChunk(np.tile(self._tone, len(token)), ((word, 0),))
                word += 1
