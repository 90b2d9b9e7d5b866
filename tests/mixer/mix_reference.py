"""float64 references the mixer is checked against (written from the formulas, not the kernel)."""

from __future__ import annotations

import numpy as np


def equal_power_in(length: int) -> np.ndarray:
    """Gain of each sample of an equal-power fade in of `length` samples: sin(pi/2 * k/length), k = 1..length."""
    return np.sin(np.pi / 2 * np.arange(1, length + 1) / length)


def equal_power_out(length: int) -> np.ndarray:
    """cos(pi/2 * k/length), k = 1..length: the last sample is silent."""
    return np.cos(np.pi / 2 * np.arange(1, length + 1) / length)


def mix(sources: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Sum of source * gain in float64, rounded and saturated to int16."""
    acc = np.zeros(len(sources[0][0]), dtype=np.float64)
    for pcm, gain in sources:
        acc += pcm.astype(np.float64) * gain
    return np.clip(np.rint(acc), -32768, 32767).astype(np.int16)


def looped(clip: np.ndarray, length: int) -> np.ndarray:
    """`clip` repeated to `length` samples."""
    return np.resize(clip, length)


def once(clip: np.ndarray, length: int) -> np.ndarray:
    """`clip` then silence, cut to `length` samples."""
    out = np.zeros(length, dtype=clip.dtype)
    n = min(length, clip.size)
    out[:n] = clip[:n]
    return out


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.9, phase: float = 0.0) -> np.ndarray:
    """A float64 sine in [-1, 1]."""
    t = np.arange(round(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t + phase)


def snr_db(signal: np.ndarray, reference: np.ndarray) -> float:
    err = signal - reference
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum(err**2), 1e-30)))


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(spectrum)])


def max_step(x: np.ndarray, channels: int = 1) -> int:
    """Largest sample-to-sample change within any channel."""
    frames = x.reshape(-1, channels).astype(np.int64)
    return int(np.max(np.abs(np.diff(frames, axis=0)))) if len(frames) > 1 else 0


def run(mixer, count: int) -> np.ndarray:
    """Mix `count` frames with a parley.audio.Mixer; the concatenated int16 output."""
    out = [np.frombuffer(mixer.mix_frame().pcm, dtype=np.int16) for _ in range(count)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)
