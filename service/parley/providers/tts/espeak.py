"""The default TTS: espeak-ng (GPL-3.0-or-later), offline, first audio in milliseconds."""

from __future__ import annotations

from typing import Any

from parley.errors import InvalidArgument
from parley.providers.options import Opt
from parley.providers.tts.espeak_engine import EspeakEngine, engine
from parley.providers.tts.segmented import PieceAudio, SegmentedTTS
from parley.providers.workers import Workers

DEFAULT_VOICE = "en-us"

OPTIONS = {
    "rate": Opt(int, 160, min=80, max=450, help="words per minute"),
    "pitch": Opt(int, 50, min=0, max=100, help="base pitch"),
    "chunk_ms": Opt(int, 100, min=10, max=1000, help="size of the yielded chunks"),
}


class EspeakTTS(SegmentedTTS):
    name = "espeak"

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        super().__init__(workers)
        self._engine: EspeakEngine = engine()
        self.voice = voice or DEFAULT_VOICE
        if not self._engine.has_voice(self.voice):
            raise InvalidArgument("config.voice", f"espeak has no voice {self.voice!r} (try en-us, en-gb, en+f3)")
        self.sample_rate = self._engine.sample_rate
        self.rate = options["rate"]
        self.pitch = options["pitch"]
        self.chunk_ms = options["chunk_ms"]

    def _synthesize_piece(self, piece: str) -> PieceAudio:
        audio, word_starts = self._engine.synthesize(piece, self.voice, self.rate, self.pitch)
        return PieceAudio(audio, word_starts)
