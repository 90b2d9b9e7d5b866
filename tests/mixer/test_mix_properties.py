"""Property tests: the mixer against a float64 reference mix."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from mix_reference import equal_power_in, equal_power_out, looped, max_step, mix, once, run

from parley.audio import Mixer, clip_from_pcm

RATES = st.sampled_from([8000, 16000, 24000, 48000])
GAINS = st.floats(0.0, 2.0, allow_nan=False)
SAMPLES = st.integers(-32768, 32767)


def clip_of(pcm: np.ndarray, rate: int, channels: int, looping: bool = True):
    return clip_from_pcm(pcm, rate, channels, rate, channels, looping=looping)


@st.composite
def pcm(draw, channels: int, max_frames: int, min_frames: int = 1) -> np.ndarray:
    n = draw(st.integers(min_frames, max_frames))
    edge = st.sampled_from([-32768, 32767, 0, -1, 1])
    elements = st.one_of(SAMPLES, edge)
    return draw(arrays(np.int16, n * channels, elements=elements))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), rate=RATES, channels=st.sampled_from([1, 2]), g_speech=GAINS, g_bg=GAINS, g_th=GAINS,
       th_loops=st.booleans())
def test_matches_float64_reference_within_one_lsb(data, rate, channels, g_speech, g_bg, g_th, th_loops):
    m = Mixer(rate, channels, speech_gain=g_speech)
    frame = m.frame_samples * channels
    bg = data.draw(pcm(channels, 3 * m.frame_samples))
    th = data.draw(pcm(channels, 2 * m.frame_samples))
    speech = data.draw(pcm(channels, 3 * m.frame_samples, min_frames=0))
    # The reference mixes what the clips hold: a loop whose ends do not meet had its seam crossfaded on load.
    bg_clip, th_clip = clip_of(bg, rate, channels), clip_of(th, rate, channels, looping=th_loops)
    m.play_layer("background", bg_clip, gain=g_bg, fade_in_ms=0)
    m.play_layer("thinking", th_clip, gain=g_th, looping=th_loops, fade_in_ms=0)
    m.push_speech(speech, "u1")
    m.end_speech("u1")  # the whole utterance: running out of it is its end, not an underrun
    n = 5 * frame
    out = run(m, 5)
    th_ref = looped(th_clip.pcm, n) if th_loops else once(th_clip.pcm, n)
    ref = mix([(once(speech, n), g_speech), (looped(bg_clip.pcm, n), g_bg), (th_ref, g_th)])
    assert np.max(np.abs(out.astype(int) - ref.astype(int))) <= 1


@settings(max_examples=40, deadline=None)
@given(rate=RATES, channels=st.sampled_from([1, 2]), sign=st.sampled_from([-1, 1]), gain=st.floats(0.5, 2.0))
def test_full_scale_saturates_and_never_wraps(rate, channels, sign, gain):
    m = Mixer(rate, channels, speech_gain=gain)
    full = np.full(m.frame_samples * channels, 32767 if sign > 0 else -32768, dtype=np.int16)
    m.play_layer("background", clip_of(full, rate, channels), gain=gain, fade_in_ms=0)
    m.play_layer("thinking", clip_of(full, rate, channels), gain=gain, fade_in_ms=0)
    m.push_speech(np.tile(full, 3), "u")
    out = run(m, 3)
    assert np.all(out == (32767 if sign > 0 else -32768))


@settings(max_examples=40, deadline=None)
@given(rate=RATES, cycles=st.integers(1, 9), period=st.integers(40, 3000), amp=st.integers(1000, 32767))
def test_loop_wrap_is_continuous(rate, cycles, period, amp):
    """A periodic clip looped through the mixer is the clip repeated, sample for sample."""
    k = np.arange(period)
    clip = np.rint(amp * np.sin(2 * np.pi * cycles * k / period)).astype(np.int16)
    m = Mixer(rate)
    m.play_layer("background", clip_of(clip, rate, 1), gain=1.0, fade_in_ms=0)
    count = max(3, 3 * period // m.frame_samples + 1)
    out = run(m, count)
    assert np.array_equal(out, looped(clip, out.size))
    assert max_step(out) <= max_step(np.concatenate([clip, clip[:1]]))


@settings(max_examples=40, deadline=None)
@given(rate=RATES, fade_ms=st.integers(5, 600), level=st.integers(1000, 32767), layer=st.sampled_from(["background", "thinking"]))
def test_layer_fades_follow_the_equal_power_ramp(rate, fade_ms, level, layer):
    """Fade in then stop, on a constant signal: each sample is level * ramp within 1 LSB,
    so no step is larger than the reference ramp's own largest step."""
    m = Mixer(rate)
    dc = np.full(m.frame_samples, level, dtype=np.int16)
    m.play_layer(layer, clip_of(dc, rate, 1), gain=1.0, fade_in_ms=fade_ms, fade_out_ms=fade_ms)
    length = rate * fade_ms // 1000
    count = length // m.frame_samples + 2
    up = run(m, count)
    ramp_in = np.concatenate([equal_power_in(length), np.ones(up.size - length)])
    assert np.max(np.abs(up - level * ramp_in)) <= 1
    m.stop_layer(layer)
    down = run(m, count)
    ramp_out = np.concatenate([equal_power_out(length), np.zeros(down.size - length)])
    assert np.max(np.abs(down - level * ramp_out)) <= 1
    reference_step = level * max(np.max(np.abs(np.diff(ramp_in))), np.max(np.abs(np.diff(ramp_out))))
    assert max_step(np.concatenate([up, down])) <= reference_step + 1
    assert not m.layer_playing(layer)


@settings(max_examples=30, deadline=None)
@given(rate=RATES, fade_in=st.integers(20, 400), stop_after=st.integers(1, 19), fade_out=st.integers(20, 400))
def test_stop_during_fade_in_continues_from_the_level_reached(rate, fade_in, stop_after, fade_out):
    m = Mixer(rate)
    level = 20000
    dc = np.full(m.frame_samples, level, dtype=np.int16)
    m.play_layer("thinking", clip_of(dc, rate, 1), gain=1.0, fade_in_ms=fade_in)
    before = run(m, stop_after)
    m.stop_layer("thinking", fade_out)
    after = run(m, rate * fade_out // 1000 // m.frame_samples + 2)
    out = np.concatenate([before, after])
    steepest = level * max(np.max(np.diff(equal_power_in(rate * fade_in // 1000))),
                           np.max(-np.diff(equal_power_out(rate * fade_out // 1000))))
    assert max_step(out) <= steepest + 1
    assert out[-1] == 0 and not m.layer_playing("thinking")


@settings(max_examples=40, deadline=None)
@given(rate=RATES, fade_ms=st.integers(5, 500), played_frames=st.integers(0, 10), level=st.integers(1000, 32767))
def test_interrupt_fades_the_speech_tail_like_the_reference(rate, fade_ms, played_frames, level):
    m = Mixer(rate)
    speech = np.full(m.frame_samples * 40, level, dtype=np.int16)
    m.push_speech(speech, "u")
    head = run(m, played_frames)
    played = m.interrupt(fade_ms)
    tail_len = rate * fade_ms // 1000 if played_frames else 0
    assert played == played_frames * m.frame_samples + tail_len
    tail = run(m, tail_len // m.frame_samples + 2)
    expected = np.zeros(tail.size)
    expected[:tail_len] = level * equal_power_out(tail_len)
    assert np.max(np.abs(tail - expected)) <= 1
    assert np.all(head == level)
    assert m.speech_queued_samples == 0
