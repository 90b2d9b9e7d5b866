"""Streaming STT with interim results: CMU PocketSphinx (`pocketsphinx`, BSD-2).

It ships its own en-us model and decodes while audio arrives, so push()
returns interim hypotheses. It is fast but much less accurate than Whisper,
especially on synthetic voices. One decoder per stream, created on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parley.providers.base import STT, ProviderError, STTStream, Transcript, Word
from parley.providers.options import Opt
from parley.providers.workers import Workers

OPTIONS = {
    "interim": Opt(bool, True, help="return interim hypotheses from push()"),
}

_FRAME_MS = 10  # PocketSphinx's frame rate is 100 frames/s
_FILLERS = {"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "[BREATH]", "[COUGH]", "[UH]", "[UM]", "[SMACK]"}


class PocketSphinxSTT(STT):
    name = "pocketsphinx"
    sample_rate = 16000

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self.options = options
        self.workers = workers

    def stream(self) -> STTStream:
        return PocketSphinxStream(self)


class PocketSphinxStream(STTStream):
    def __init__(self, stt: PocketSphinxSTT) -> None:
        self._stt = stt
        self._decoder: Any = None
        self._in_utterance = False
        self._last_interim = ""

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await self._stt.workers.run(fn, *args)
        except Exception as exc:
            raise ProviderError("failed", "stt", self._stt.name, f"{type(exc).__name__}: {exc}") from exc

    async def push(self, pcm: np.ndarray, *, interim: bool = True) -> Transcript | None:
        text = await self._run(self._process, np.asarray(pcm, dtype=np.int16).tobytes())
        if not interim or not self._stt.options["interim"] or not text or text == self._last_interim:
            return None
        self._last_interim = text
        return Transcript(text, False, [])

    async def finish(self) -> Transcript:
        if not self._in_utterance:
            return Transcript("", True, [])
        self._last_interim = ""
        return await self._run(self._end)

    async def aclose(self) -> None:
        if self._decoder is not None and self._in_utterance:
            self._decoder.end_utt()
        self._in_utterance = False
        self._decoder = None

    def _process(self, raw: bytes) -> str:
        if self._decoder is None:
            from pocketsphinx import Decoder

            self._decoder = Decoder(samprate=self._stt.sample_rate, loglevel="FATAL")
        if not self._in_utterance:
            self._decoder.start_utt()
            self._in_utterance = True
        self._decoder.process_raw(raw, False, False)
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    def _end(self) -> Transcript:
        self._decoder.end_utt()
        self._in_utterance = False
        hyp = self._decoder.hyp()
        words = [
            Word(seg.word, seg.start_frame * _FRAME_MS, (seg.end_frame + 1) * _FRAME_MS)
            for seg in self._decoder.seg()
            if seg.word not in _FILLERS
        ]
        return Transcript(hyp.hypstr if hyp is not None else "", True, words)
