"""Streaming STT with interim results: CMU PocketSphinx (`pocketsphinx`, BSD-2).

It ships its own en-us model and decodes while audio arrives, so push()
returns interim hypotheses. It is fast but much less accurate than Whisper,
especially on synthetic voices.

The decoders run in a process of their own (`model_process.py`): the
binding holds the GIL for all of its work, 0.4 s to load a decoder and
35-250 ms to decode 200 ms of audio, and on a server thread every call's
audio stopped for that long. A decoder is also 90 MiB, so they are not one
per stream: an utterance takes one from a pool in that process at its first
audio and gives it back at its end (finish or aclose), and at most
`decoders` utterances are decoded at once. A caller who starts speaking
while all are taken waits for one (the listener keeps the audio meanwhile,
within its bounded queue). Jobs run one at a time in the process, in the
order the sessions asked, so one process's core is the limit of what all
callers say together.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import numpy as np

from parley.providers.base import STT, ProviderError, STTStream, Transcript, Word
from parley.providers.model_process import ModelProcess
from parley.providers.options import Opt
from parley.providers.shared import MODELS, PerLoop, SharedModel
from parley.providers.workers import Workers

OPTIONS = {
    "interim": Opt(bool, True, help="return interim hypotheses from push()"),
    "decoders": Opt(int, 4, min=1, max=32,
                    help="utterances decoded at once, by every session together (a decoder holds 90 MiB)"),
}

SAMPLE_RATE = 16000
JOB_TIMEOUT_S = 30.0  # the first job starts the process and loads a decoder; decoding 100 ms takes well under 1 s
_FRAME_MS = 10  # PocketSphinx's frame rate is 100 frames/s
_FILLERS = {"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "[BREATH]", "[COUGH]", "[UH]", "[UM]", "[SMACK]"}


class PocketSphinxSTT(STT):
    name = "pocketsphinx"
    sample_rate = SAMPLE_RATE

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self.options = options
        self.workers = workers

    def model(self) -> SharedModel[DecoderHost]:
        decoders = self.options["decoders"]
        return MODELS.get(("pocketsphinx", decoders), lambda: DecoderHost(decoders))

    def stream(self) -> STTStream:
        return PocketSphinxStream(self)


class DecoderHost:
    """The decoders' process, shared by every session, and how many utterances may hold a decoder at once."""

    def __init__(self, decoders: int) -> None:
        self.process = ModelProcess(_Decoders, job_timeout=JOB_TIMEOUT_S)
        self._keys = itertools.count()
        self._free_decoders = PerLoop(lambda: asyncio.Semaphore(decoders))  # waiting never parks a thread

    async def open_utterance(self) -> int:
        """Wait for a free decoder; the key the utterance's jobs name it by."""
        await self._free_decoders.get().acquire()
        return next(self._keys)

    def close_utterance(self) -> None:
        """Its decoder is free again (the utterance ended in the process, or the process is gone)."""
        self._free_decoders.get().release()

    def close(self) -> None:
        self.process.close()


class PocketSphinxStream(STTStream):
    def __init__(self, stt: PocketSphinxSTT) -> None:
        self._stt = stt
        self._utterance: int | None = None  # the open utterance's key, while it holds a decoder
        self._cepstral_mean: str | None = None  # this caller's, from the last utterance; None: the model's
        self._last_interim = ""

    async def push(self, pcm: np.ndarray, *, interim: bool = True) -> Transcript | None:
        if self._utterance is None:
            self._utterance = await self._stt.model().model.open_utterance()
        text = await self._run(_decode, self._utterance, self._cepstral_mean,
                               np.asarray(pcm, dtype=np.int16).tobytes())
        if not interim or not self._stt.options["interim"] or not text or text == self._last_interim:
            return None
        self._last_interim = text
        return Transcript(text, False, [])

    async def finish(self) -> Transcript:
        if self._utterance is None:
            return Transcript("", True, [])
        self._last_interim = ""
        try:
            transcript, self._cepstral_mean = await self._run(_finish, self._utterance)
            return transcript
        finally:
            self._give_back()

    async def aclose(self) -> None:
        if self._utterance is None:
            return
        try:
            await self._run(_drop, self._utterance)
        except ProviderError:
            pass  # the process is gone, and its decoders with it
        finally:
            self._give_back()

    def _give_back(self) -> None:
        self._utterance = None
        self._stt.model().model.close_utterance()

    async def _run(self, fn: Any, *args: Any) -> Any:
        shared = self._stt.model()
        async with shared.lock():
            try:
                return await shared.model.process.run(self._stt.workers, fn, *args)
            except Exception as exc:
                raise ProviderError("failed", "stt", self._stt.name, f"{type(exc).__name__}: {exc}") from exc


class _Decoders:
    """The decoders' process side: the open utterances' decoders, and the free ones kept for the next."""

    def __init__(self) -> None:
        self.open: dict[int, Any] = {}
        self.free: list[Any] = []
        self.initial_cepstral_mean = ""

    def take(self, utterance: int, cepstral_mean: str | None) -> Any:
        """The utterance's decoder; one from the pool set to the caller's cepstral mean when it opens."""
        decoder = self.open.get(utterance)
        if decoder is None:
            if self.free:
                decoder = self.free.pop()
            else:
                from pocketsphinx import Decoder

                decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
                self.initial_cepstral_mean = self.initial_cepstral_mean or decoder.get_cmn()
            decoder.set_cmn(cepstral_mean or self.initial_cepstral_mean)
            decoder.start_utt()
            self.open[utterance] = decoder
        return decoder

    def end(self, utterance: int) -> Any:
        """The utterance's decoder with its utterance ended, now free again (None for an unknown key)."""
        decoder = self.open.pop(utterance, None)
        if decoder is not None:
            decoder.end_utt()
            self.free.append(decoder)
        return decoder


def _decode(decoders: _Decoders, utterance: int, cepstral_mean: str | None, raw: bytes) -> str:
    decoder = decoders.take(utterance, cepstral_mean)
    decoder.process_raw(raw, False, False)
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


def _finish(decoders: _Decoders, utterance: int) -> tuple[Transcript, str | None]:
    """The final transcript, and the cepstral mean the caller's voice brought the decoder to."""
    decoder = decoders.end(utterance)  # free again, and read here before the next job can take it
    if decoder is None:  # a new process since the utterance began: what it heard went with the old one
        return Transcript("", True, []), None
    hyp = decoder.hyp()
    words = [
        Word(seg.word, seg.start_frame * _FRAME_MS, (seg.end_frame + 1) * _FRAME_MS)
        for seg in decoder.seg()
        if seg.word not in _FILLERS
    ]
    return Transcript(hyp.hypstr if hyp is not None else "", True, words), decoder.get_cmn()


def _drop(decoders: _Decoders, utterance: int) -> None:
    decoders.end(utterance)
