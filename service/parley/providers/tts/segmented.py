"""Streaming TTS on top of an engine that synthesizes one text piece at a time.

The text is cut into pieces (parley.providers.text). Each piece is synthesized
on the worker pool while the previous piece's audio is being consumed (one
piece of look-ahead), and its audio is yielded in chunks of `chunk_ms`. No
pool thread ever waits for the consumer, so a slow reader cannot starve other
sessions; closing the generator stops after the piece in flight.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from parley.cancelling import cancel_and_wait
from parley.providers.base import TTS, ProviderError, SpeechChunk
from parley.providers.text import segments
from parley.providers.workers import Workers


@dataclass(frozen=True)
class PieceAudio:
    """One piece's audio; `word_starts[i]` is the first sample of word i of the piece (a prefix of them)."""

    pcm: np.ndarray
    word_starts: list[int] = field(default_factory=list)


class SegmentedTTS(TTS):
    chunk_ms: int = 100

    def __init__(self, workers: Workers) -> None:
        self._workers = workers

    @abstractmethod
    def _synthesize_piece(self, piece: str) -> PieceAudio:
        """Audio of one text piece (blocking; runs on the worker pool)."""

    async def _piece(self, piece: str) -> PieceAudio:
        try:
            return await self._workers.run(self._synthesize_piece, piece)
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError("failed", "tts", self.name, f"{type(exc).__name__}: {exc}") from exc

    async def synthesize_timed(self, text: str) -> AsyncIterator[SpeechChunk]:
        pieces = segments(text)
        if not pieces:
            return
        step = max(1, self.sample_rate * self.chunk_ms // 1000)
        pending: asyncio.Task[PieceAudio] = asyncio.ensure_future(self._piece(pieces[0]))
        words_before = 0  # pieces join back to the text's words, so piece word i is text word words_before + i
        try:
            for index, piece in enumerate(pieces):
                audio = await pending
                if index + 1 < len(pieces):
                    pending = asyncio.ensure_future(self._piece(pieces[index + 1]))
                for start in range(0, len(audio.pcm), step):
                    end = start + step
                    starts = tuple((words_before + w, s - start) for w, s in enumerate(audio.word_starts)
                                   if start <= s < end)
                    yield SpeechChunk(audio.pcm[start:end], starts)
                words_before += len(piece.split())
        finally:
            await cancel_and_wait([pending])
