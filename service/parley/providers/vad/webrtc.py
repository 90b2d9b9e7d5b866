"""The default VAD: WebRTC's GMM voice detector (`webrtcvad-wheels`, MIT)."""

from __future__ import annotations

from typing import Any

import numpy as np
import webrtcvad

from parley.providers.base import VAD, VADStream
from parley.providers.options import Opt
from parley.providers.vad.framing import FramedVADStream
from parley.providers.workers import Workers

OPTIONS = {
    "mode": Opt(int, 2, min=0, max=3, help="aggressiveness: 0 keeps most audio as speech, 3 the least"),
    "frame_ms": Opt(int, 30, choices=(10, 20, 30)),
    "min_speech_ms": Opt(int, 60, min=10, max=2000),
    "min_silence_ms": Opt(int, 300, min=30, max=5000),
    "min_level_dbfs": Opt(float, -55.0, min=-96.0, max=0.0, help="quieter frames are never speech"),
}

_FULL_SCALE_DB = 20 * np.log10(32768.0)


class WebRTCVAD(VAD):
    name = "webrtc"
    sample_rate = 16000

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self._options = options

    def stream(self) -> VADStream:
        vad = webrtcvad.Vad(self._options["mode"])
        rate = self.sample_rate
        floor = self._options["min_level_dbfs"] + _FULL_SCALE_DB

        def classify(frame: np.ndarray, energy_db: float) -> bool:
            return energy_db >= floor and bool(vad.is_speech(frame.tobytes(), rate))

        return FramedVADStream(
            classify,
            rate,
            self._options["frame_ms"],
            self._options["min_speech_ms"],
            self._options["min_silence_ms"],
        )
