"""Helpers shared by the provider tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEAD_MS = 500
TAIL_MS = 1000


@dataclass(frozen=True)
class Speech:
    """16 kHz int16 speech padded with silence, and where the voice truly is."""

    pcm: np.ndarray
    start_ms: float
    end_ms: float


def frames(pcm: np.ndarray, ms: int = 20) -> list[np.ndarray]:
    step = 16 * ms
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]
