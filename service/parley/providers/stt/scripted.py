"""Stand-in STT for engine tests: not speech recognition.

It hears nothing: finish() returns the next transcript of a script given in
the options (cycling), once any audio was pushed since the last finish, with
its words spread evenly over that audio. Audio shorter than
`silent_below_ms` (a cough, a click) transcribes as no words.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parley.providers.base import STT, STTStream, Transcript, Word
from parley.providers.options import Opt
from parley.providers.workers import Workers

OPTIONS = {
    "transcripts": Opt(list, ["hello"], items=str, help="returned in turn by finish(), cycling"),
    "silent_below_ms": Opt(int, 0, min=0, max=10_000, help="shorter audio is heard as no words (noise)"),
}


class ScriptedSTT(STT):
    name = "scripted"
    sample_rate = 16000

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self.transcripts: list[str] = list(options["transcripts"]) or [""]
        self.silent_below = options["silent_below_ms"] * self.sample_rate // 1000

    def stream(self) -> STTStream:
        return ScriptedStream(self.transcripts, self.sample_rate, self.silent_below)


class ScriptedStream(STTStream):
    def __init__(self, transcripts: list[str], sample_rate: int, silent_below: int) -> None:
        self._transcripts = transcripts
        self._rate = sample_rate
        self._silent_below = silent_below
        self._next = 0
        self._samples = 0

    async def push(self, pcm: np.ndarray, *, interim: bool = True) -> Transcript | None:
        self._samples += len(pcm)
        return None

    async def finish(self) -> Transcript:
        if self._samples == 0 or self._samples < self._silent_below:
            self._samples = 0
            return Transcript("", True, [])
        text = self._transcripts[self._next % len(self._transcripts)]
        self._next += 1
        duration_ms = self._samples * 1000 // self._rate
        self._samples = 0
        tokens = text.split()
        step = duration_ms // max(1, len(tokens))
        words = [Word(token, i * step, (i + 1) * step) for i, token in enumerate(tokens)]
        return Transcript(text, True, words)

    async def aclose(self) -> None:
        self._samples = 0
