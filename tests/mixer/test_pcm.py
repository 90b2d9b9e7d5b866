"""PCM helpers: validation and resampling of speech chunks."""

from __future__ import annotations

import numpy as np
import pytest
from mix_reference import peak_hz, snr_db, tone

from parley.audio import StreamResampler, as_int16, resample, to_bytes
from parley.audio._pcm import energy_db, round_to_int16
from parley.errors import InvalidArgument


def tts_like(rate: int, seconds: float) -> np.ndarray:
    return np.rint(tone(1000.0, rate, seconds) * 32768).astype(np.int16)


@pytest.mark.parametrize("to_rate", [16000, 24000, 48000])
def test_resample_tts_rate_keeps_pitch_length_and_quality(to_rate):
    out = resample(tts_like(22050, 1.0), 22050, to_rate)
    assert out.dtype == np.int16 and out.size == to_rate
    assert abs(peak_hz(out / 32768.0, to_rate) - 1000.0) <= 1.0
    edge = to_rate // 50
    ideal = tone(1000.0, to_rate, 1.0)
    assert snr_db((out / 32768.0)[edge:-edge], ideal[edge:-edge]) >= 90.0


@pytest.mark.parametrize("channels", [1, 2])
def test_stream_resampler_matches_one_shot_across_chunk_edges(channels):
    rng = np.random.default_rng(5)
    mono = tts_like(22050, 1.0)
    pcm = np.repeat(mono, channels) if channels == 2 else mono
    whole = resample(pcm, 22050, 24000, channels)
    stream = StreamResampler(22050, 24000, channels)
    pieces, pos = [], 0
    while pos < mono.size:
        n = int(rng.integers(1, 3000))
        pieces.append(stream.process(pcm[pos * channels : (pos + n) * channels]))
        pos += n
    pieces.append(stream.process(b"", last=True))
    joined = np.concatenate(pieces)
    assert abs(joined.size - whole.size) <= channels
    n = min(joined.size, whole.size)
    assert np.max(np.abs(joined[:n].astype(int) - whole[:n])) <= 1


@pytest.mark.parametrize("from_rate,to_rate", [(16000, 24000), (22050, 24000), (24000, 16000), (16000, 48000),
                                               (24000, 24000)])
def test_output_length_is_what_the_chunks_and_the_flush_make(from_rate, to_rate):
    """The speaker places words and utterance ends by this count before the audio is resampled."""
    rng = np.random.default_rng(3)
    for total in (1, 7, 320, 12345):
        stream = StreamResampler(from_rate, to_rate)
        pcm = rng.integers(-8000, 8000, total).astype(np.int16)
        cuts = sorted(rng.integers(0, total, 3))
        made = sum(len(stream.process(part)) for part in np.split(pcm, cuts))
        made += len(stream.process(np.zeros(0, np.int16), last=True))
        assert made == stream.output_length(total), (from_rate, to_rate, total)


def test_same_rate_is_a_copy():
    pcm = tts_like(24000, 0.1)
    assert np.array_equal(resample(pcm, 24000, 24000), pcm)
    assert np.array_equal(StreamResampler(24000, 24000).process(pcm.tobytes()), pcm)


def test_bytes_round_trip_and_validation():
    pcm = tts_like(16000, 0.01)
    assert np.array_equal(as_int16(to_bytes(pcm)), pcm)
    with pytest.raises(InvalidArgument, match="odd byte length"):
        as_int16(b"\x01\x02\x03")
    with pytest.raises(InvalidArgument, match="wrong sample width"):
        as_int16(np.zeros(3, np.float64))
    with pytest.raises(InvalidArgument, match="whole number"):
        as_int16(np.zeros(3, np.int16), channels=2)
    with pytest.raises(InvalidArgument):
        resample(pcm, 0, 16000)


def test_frame_energy_is_the_mean_square_in_db_for_any_frame_the_listener_sees():
    """The VAD's thresholds are in these dB: silence, full scale and a voice-level tone land where they should."""
    rng = np.random.default_rng(7)
    for frame in [(rng.standard_normal(320) * 3000).astype(np.int16), tts_like(16000, 0.02),
                  (rng.standard_normal(640) * 3000).astype(np.int16)[::2]]:  # a strided view too
        wide = frame.astype(np.float64)
        assert energy_db(frame) == pytest.approx(10 * np.log10(np.mean(wide * wide) + 1e-9), abs=1e-9)
    assert energy_db(np.zeros(320, np.int16)) == pytest.approx(-90.0)
    assert energy_db(np.zeros(0, np.int16)) == pytest.approx(-90.0)
    assert energy_db(np.full(320, -32768, np.int16)) == pytest.approx(20 * np.log10(32768.0))
    with pytest.raises(ValueError):  # only int16 samples: a float frame is not silently reinterpreted
        energy_db(np.zeros(320, np.float32))


def test_resampled_audio_is_rounded_half_to_even_and_saturated_as_numpy_would():
    """What every resampled chunk goes through on its way back to int16 (the agent's speech as the mixer takes it)."""
    rng = np.random.default_rng(3)
    ties = np.round(rng.standard_normal(10_000).astype(np.float32) * 200) / 2  # many exact .5s
    loud = rng.standard_normal(10_000).astype(np.float32) * 40_000  # past full scale both ways
    edges = np.array([0.5, 1.5, -0.5, -1.5, 2.5, 32766.5, 32767.49, 32767.5, -32768.5, -32767.5, 1e9, -1e9],
                     np.float32)
    for x in (ties, loud, edges, np.zeros(0, np.float32)):
        assert np.array_equal(round_to_int16(x), np.clip(np.rint(x), -32768, 32767).astype(np.int16))
