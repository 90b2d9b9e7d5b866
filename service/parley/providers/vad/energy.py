"""Stand-in VAD for engine tests: a frame is speech when it is louder than a threshold.

Deterministic and dependency-free; it cannot tell a voice from any other
sound, so it pairs with the "tone" stand-in TTS, not with real callers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parley.providers.base import VAD, VADStream
from parley.providers.options import Opt
from parley.providers.vad.framing import FramedVADStream
from parley.providers.workers import Workers

OPTIONS = {
    "threshold_dbfs": Opt(float, -40.0, min=-90.0, max=0.0),
    "frame_ms": Opt(int, 20, choices=(10, 20, 30)),
    "min_speech_ms": Opt(int, 40, min=10, max=2000),
    "min_silence_ms": Opt(int, 300, min=20, max=5000),
}

_FULL_SCALE_DB = 20 * np.log10(32768.0)


class EnergyVAD(VAD):
    name = "energy"
    sample_rate = 16000

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self._options = options

    def stream(self) -> VADStream:
        threshold = self._options["threshold_dbfs"] + _FULL_SCALE_DB

        def classify(frame: np.ndarray, energy_db: float) -> bool:
            return energy_db > threshold

        return FramedVADStream(
            classify,
            self.sample_rate,
            self._options["frame_ms"],
            self._options["min_speech_ms"],
            self._options["min_silence_ms"],
        )
