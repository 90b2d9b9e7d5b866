"""Synthesize the two built-in layer sounds (Apache-2.0, like the project).

    .venv/bin/python mixer/make_sounds.py

writes service/parley/audio/sounds/{ambience,thinking}.wav: 24 kHz mono
16-bit, deterministic (fixed seeds). Both are exactly periodic, so they loop
without a seam: the ambience is shaped noise built in the frequency domain
(whose inverse FFT is periodic by construction), and the keystrokes of the
thinking pattern are placed on a circle, a click near the end wrapping to
the start.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 24_000
OUT = Path(__file__).resolve().parent.parent / "service" / "parley" / "audio" / "sounds"


def ambience(seconds: float = 4.0, seed: int = 7) -> np.ndarray:
    """Soft room tone: pink-ish noise band-limited to ~60 Hz..3 kHz, slowly breathing."""
    n = int(seconds * RATE)
    rng = np.random.default_rng(seed)
    f = np.fft.rfftfreq(n, 1 / RATE)
    f[0] = 1.0
    shape = 1 / np.sqrt(f)  # pink
    shape *= 1 / (1 + (f / 3000.0) ** 4)  # gentle low-pass
    shape *= (f / 60.0) ** 2 / (1 + (f / 60.0) ** 2)  # remove rumble
    shape[0] = 0.0
    spectrum = shape * np.exp(2j * np.pi * rng.random(f.size))
    x = np.fft.irfft(spectrum, n)
    t = np.arange(n) / n
    x *= 1 + 0.2 * np.sin(2 * np.pi * 2 * t) + 0.1 * np.sin(2 * np.pi * 5 * t + 1.0)  # whole cycles: still periodic
    return x / np.max(np.abs(x)) * 10 ** (-14 / 20)


def thinking(seconds: float = 3.0, seed: int = 11) -> np.ndarray:
    """A soft keyboard: short filtered clicks in bursts, with pauses."""
    n = int(seconds * RATE)
    rng = np.random.default_rng(seed)
    out = np.zeros(n)
    k = np.arange(int(0.03 * RATE))
    env = np.exp(-k / (0.004 * RATE))
    click_band = np.fft.rfftfreq(k.size, 1 / RATE)
    band = np.exp(-(((click_band - 3500.0) / 1800.0) ** 2))
    t = 0.05
    while t < seconds - 0.02:
        noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(k.size)) * band, k.size)
        thump = np.sin(2 * np.pi * rng.uniform(180, 260) * k / RATE) * np.exp(-k / (0.008 * RATE)) * 0.5
        click = (noise / np.max(np.abs(noise)) * env + thump) * rng.uniform(0.5, 1.0)
        idx = (int(t * RATE) + k) % n  # wrap around: the loop seam falls inside the pattern
        out[idx] += click
        t += rng.uniform(0.35, 0.8) if rng.random() < 0.15 else rng.uniform(0.07, 0.2)
    return out / np.max(np.abs(out)) * 10 ** (-9 / 20)


def write(name: str, x: np.ndarray) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.wav"
    sf.write(path, np.rint(x * 32767).astype(np.int16), RATE, subtype="PCM_16")
    return path


def main() -> None:
    for name, x in (("ambience", ambience()), ("thinking", thinking())):
        path = write(name, x)
        print(f"{path} ({path.stat().st_size} bytes, {x.size / RATE:.2f} s)")


if __name__ == "__main__":
    main()
