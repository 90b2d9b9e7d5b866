"""Mixer benchmark: ns per output frame with three active layers.

    .venv/bin/python bench/bench_mixer.py

Speech, background (ducked) and thinking all sound, with gains, in steady
state (no fade running). Side by side, in one process:

  parley kernel   MixKernel.mix(): the Cython kernel, one call per frame
  parley Mixer    Mixer.mix_frame(): the kernel plus the Python face (bytes
                  out, per-utterance bookkeeping), what the engine pays
  numpy int16     naive np.add of int16 frames, as VideoSDK Agents mixes
                  (wraps around at full scale)
  numpy float32   a correct numpy mix: float32 gains, sum, clip, rint, int16
                  (preallocated buffers, out= everywhere)
  frame copy      np.copyto of one frame: the floor for any Python-called mixer

Each figure is the best of several repeats of the mean over a loop of
frames. Results go to bench/results/mixer.json.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from parley.audio import Mixer, load_clip
from parley.audio._mixer import MixKernel

RATES = (24000, 48000)
FRAME_MS = 20
LOOP = 1000
REPEATS = 7
GAINS = (1.0, 0.3, 0.5)  # speech, background, thinking
OUT = Path(__file__).resolve().parent / "results" / "mixer.json"


def best_ns(step: Callable[[], object], before: Callable[[], None] = lambda: None) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        before()
        t0 = time.perf_counter_ns()
        for _ in range(LOOP):
            step()
        best = min(best, (time.perf_counter_ns() - t0) / LOOP)
    return best


def bench_rate(rate: int) -> dict:
    frame = rate * FRAME_MS // 1000
    bg = load_clip("builtin:ambience", rate).pcm
    th = load_clip("builtin:thinking", rate).pcm
    speech = np.resize(load_clip("builtin:ambience", rate, looping=False).pcm, frame * LOOP)

    kernel = MixKernel(1, frame, frame * (LOOP + 10))
    kernel.slot_play(0, bg, GAINS[1], True, False, True, 0)
    kernel.slot_play(2, th, GAINS[2], True, False, False, 0)
    kernel.set_ducking(10 ** (-6 / 20), frame, frame)
    kernel.set_speech_gain(GAINS[0])

    def refill_kernel() -> None:
        kernel.remove(0, kernel.speech_queued)
        kernel.push(speech)
        kernel.mix()  # settle the duck ramp

    mixer = Mixer(rate, speech_limit_ms=FRAME_MS * (LOOP + 10))
    mixer.play_layer("background", load_clip("builtin:ambience", rate), gain=GAINS[1], fade_in_ms=0)
    mixer.play_layer("thinking", load_clip("builtin:thinking", rate), gain=GAINS[2], fade_in_ms=0)
    mixer.set_ducking(6.0, attack_ms=FRAME_MS, release_ms=FRAME_MS)
    tags = iter(range(10**9))

    def refill_mixer() -> None:
        mixer.interrupt(0)
        mixer.push_speech(speech, next(tags))
        mixer.mix_frame()

    # numpy variants read frames from buffers extended by one frame, so a
    # slice never needs wrap-around logic (in numpy's favour).
    sources = [np.concatenate([x, x[:frame]]) for x in (speech, bg, th)]
    lengths = [speech.size, bg.size, th.size]
    pos = [0, 0, 0]

    def frames_now() -> list[np.ndarray]:
        views = []
        for i in range(3):
            views.append(sources[i][pos[i] : pos[i] + frame])
            pos[i] = (pos[i] + frame) % lengths[i]
        return views

    def naive_int16() -> np.ndarray:
        s, b, t = frames_now()
        return np.add(np.add(s, b), t)

    acc = np.empty(frame, np.float32)
    tmp = np.empty(frame, np.float32)
    out = np.empty(frame, np.int16)

    def numpy_float32() -> np.ndarray:
        s, b, t = frames_now()
        np.multiply(s, np.float32(GAINS[0]), out=acc, dtype=np.float32)
        np.multiply(b, np.float32(GAINS[1] * 10 ** (-6 / 20)), out=tmp, dtype=np.float32)
        np.add(acc, tmp, out=acc)
        np.multiply(t, np.float32(GAINS[2]), out=tmp, dtype=np.float32)
        np.add(acc, tmp, out=acc)
        np.clip(acc, -32768, 32767, out=acc)
        np.rint(acc, out=acc)
        np.copyto(out, acc, casting="unsafe")
        return out

    src = speech[:frame]

    def frame_copy() -> np.ndarray:
        np.copyto(out, src)
        return out

    ns = {
        "parley_kernel": best_ns(kernel.mix, refill_kernel),
        "parley_mixer": best_ns(mixer.mix_frame, refill_mixer),
        "numpy_int16_naive": best_ns(naive_int16),
        "numpy_float32_correct": best_ns(numpy_float32),
        "frame_copy": best_ns(frame_copy),
    }
    return {
        "sample_rate": rate,
        "frame_ms": FRAME_MS,
        "samples_per_frame": frame,
        "active_layers": 3,
        "ns_per_frame": {k: round(v, 1) for k, v in ns.items()},
        "ratios": {
            "numpy_float32_over_kernel": round(ns["numpy_float32_correct"] / ns["parley_kernel"], 2),
            "numpy_int16_over_kernel": round(ns["numpy_int16_naive"] / ns["parley_kernel"], 2),
            "kernel_over_frame_copy": round(ns["parley_kernel"] / ns["frame_copy"], 2),
            "numpy_float32_over_mixer": round(ns["numpy_float32_correct"] / ns["parley_mixer"], 2),
        },
        "wraps_at_full_scale": {"numpy_int16_naive": wraps_naive(), "parley": wraps_parley(rate)},
    }


def wraps_naive() -> bool:
    full = np.full(8, 30000, np.int16)
    return bool(np.any(np.add(full, full) < 0))


def wraps_parley(rate: int) -> bool:
    k = MixKernel(1, rate * FRAME_MS // 1000, rate)
    full = np.full(rate * FRAME_MS // 1000, 30000, np.int16)
    k.slot_play(0, full, 1.0, True, False, False, 0)
    k.push(full)
    k.mix()
    return bool(np.any(k.out < 0))


def main() -> None:
    results = [bench_rate(rate) for rate in RATES]
    report = {
        "benchmark": "mixer",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "method": f"best of {REPEATS} repeats of the mean over {LOOP} frames",
        "results": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")

    cols = ["parley_kernel", "parley_mixer", "numpy_int16_naive", "numpy_float32_correct", "frame_copy"]
    print(f"mixer: ns per {FRAME_MS} ms frame, 3 active layers (speech + background + thinking)")
    print(f"{'rate':>6} " + " ".join(f"{c:>22}" for c in cols))
    for r in results:
        print(f"{r['sample_rate']:>6} " + " ".join(f"{r['ns_per_frame'][c]:>22.0f}" for c in cols))
    print()
    for r in results:
        q = r["ratios"]
        print(
            f"{r['sample_rate']} Hz: numpy float32 / kernel = {q['numpy_float32_over_kernel']:.1f}x (goal >= 10), "
            f"kernel / frame copy = {q['kernel_over_frame_copy']:.2f}x (goal <= 3), "
            f"naive int16 / kernel = {q['numpy_int16_over_kernel']:.1f}x, "
            f"numpy float32 / Mixer.mix_frame = {q['numpy_float32_over_mixer']:.1f}x; "
            f"naive int16 wraps: {r['wraps_at_full_scale']['numpy_int16_naive']}, "
            f"parley wraps: {r['wraps_at_full_scale']['parley']}"
        )
    print(f"\nwritten to {OUT}")


if __name__ == "__main__":
    main()
