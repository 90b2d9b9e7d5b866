"""Layer loading: decoding, exact length, resampling quality, seams, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mix_reference import max_step, peak_hz, run, snr_db, tone

from parley.audio import BUILTIN_SOUNDS, Mixer, clip_from_pcm, load_clip
from parley.errors import InvalidArgument

SOURCE_RATES = [8000, 16000, 22050, 44100, 48000]
OUTPUT_RATES = [8000, 16000, 24000, 48000]


def write_tone(path: Path, rate: int, seconds: float = 1.0, freq: float = 1000.0, channels: int = 1,
               fmt: str = "WAV", subtype: str = "PCM_16") -> np.ndarray:
    """Write a 0.9-amplitude tone as int16 n = rint(32768 x), which soundfile reads back as n / 32768."""
    x = tone(freq, rate, seconds)
    pcm = np.rint(x * 32768).astype(np.int16)
    data = np.repeat(pcm[:, None], channels, axis=1) if channels > 1 else pcm
    sf.write(path, data, rate, format=fmt, subtype=subtype)
    return x


@pytest.mark.parametrize("out_rate", OUTPUT_RATES)
@pytest.mark.parametrize("src_rate", SOURCE_RATES)
def test_resampled_tone_keeps_pitch_duration_and_90db_snr(tmp_path, src_rate, out_rate):
    path = tmp_path / "tone.wav"
    write_tone(path, src_rate)
    clip = load_clip(str(path), out_rate, looping=False)
    assert clip.frames == out_rate  # exactly one second
    got = clip.pcm / 32768.0
    assert abs(peak_hz(got, out_rate) - 1000.0) <= 1.0
    ideal = tone(1000.0, out_rate, 1.0)
    edge = out_rate // 50  # a one-shot starts and stops abruptly: leave the filter's edges out
    assert snr_db(got[edge:-edge], ideal[edge:-edge]) >= 90.0


@pytest.mark.parametrize("out_rate", OUTPUT_RATES)
@pytest.mark.parametrize("src_rate", SOURCE_RATES)
def test_looping_clip_resamples_as_a_circle(tmp_path, src_rate, out_rate):
    """A periodic tone loaded for looping is right everywhere, the seam included."""
    path = tmp_path / "loop.wav"
    write_tone(path, src_rate, seconds=0.5, freq=1000.0)
    clip = load_clip(str(path), out_rate, looping=True)
    assert clip.frames == out_rate // 2
    got = clip.pcm / 32768.0
    assert snr_db(got, tone(1000.0, out_rate, 0.5)) >= 90.0
    m = Mixer(out_rate)
    m.play_layer("background", clip, gain=1.0, fade_in_ms=0)
    out = run(m, 60)  # 1.2 s: two seams
    assert max_step(out) <= max_step(clip.pcm) + 1


@pytest.mark.parametrize("channels", [1, 2])
def test_a_loop_whose_ends_do_not_meet_gets_a_seam_crossfade(tmp_path, channels):
    """A 233 Hz sine cut at 1.37 s jumps 15.6x its largest step at every wrap; loaded as a loop it must not."""
    pcm = np.rint(tone(233.0, 24000, 1.37) * 32768).astype(np.int16)
    normal = max_step(pcm)
    assert abs(int(pcm[0]) - int(pcm[-1])) > 15 * normal  # the raw seam: a click at every wrap
    sf.write(tmp_path / "cut.wav", np.repeat(pcm[:, None], channels, axis=1), 24000, subtype="PCM_16")
    clip = load_clip(str(tmp_path / "cut.wav"), 24000, channels, looping=True)
    assert clip.frames == len(pcm) - 24000 * 30 // 1000  # the loop is shorter by the 30 ms crossfade
    m = Mixer(24000, channels)
    m.play_layer("background", clip, gain=1.0, fade_in_ms=0)
    out = run(m, 3 * clip.frames // m.frame_samples)  # three wraps
    assert max_step(out, channels) <= normal
    once = load_clip(str(tmp_path / "cut.wav"), 24000, channels, looping=False)
    assert np.array_equal(once.pcm.reshape(-1, channels)[:, 0], pcm)  # a one-shot keeps every sample


def test_raw_pcm_loops_get_the_seam_crossfade_too():
    pcm = np.rint(tone(233.0, 16000, 1.37) * 32768).astype(np.int16)
    clip = clip_from_pcm(pcm, 16000, 1, 24000, looping=True)
    m = Mixer(24000)
    m.play_layer("thinking", clip, gain=1.0, fade_in_ms=0)
    assert max_step(run(m, 3 * clip.frames // m.frame_samples)) <= max_step(clip.pcm[: clip.frames // 2]) + 1


def test_built_in_sounds_loop_without_a_seam_at_every_rate():
    for name in BUILTIN_SOUNDS:
        for rate in OUTPUT_RATES:
            clip = load_clip(f"builtin:{name}", rate)
            native, native_rate = sf.read(Path(__file__).parents[2] / "service/parley/audio/sounds" / f"{name}.wav",
                                          dtype="int16")
            assert clip.frames == round(native.size * rate / native_rate)
            m = Mixer(rate)
            m.play_layer("thinking", clip, gain=1.0, fade_in_ms=0)
            out = run(m, clip.frames // m.frame_samples + 10)
            seam = clip.frames
            around = out[seam - 50 : seam + 50]
            assert max_step(around) <= max_step(clip.pcm)
            assert np.array_equal(out[seam : seam + 100], clip.pcm[:100])


def test_empty_source_means_the_layers_built_in_sound():
    assert np.array_equal(load_clip("", 24000, layer="background").pcm, load_clip("builtin:ambience", 24000).pcm)
    assert np.array_equal(load_clip("", 24000, layer="thinking").pcm, load_clip("builtin:thinking", 24000).pcm)


def test_built_in_sounds_are_small_and_not_silent():
    for name, filename in BUILTIN_SOUNDS.items():
        path = Path(__file__).parents[2] / "service/parley/audio/sounds" / filename
        assert path.stat().st_size < 250_000
        pcm = load_clip(f"builtin:{name}", 24000).pcm
        assert 100 < np.sqrt(np.mean(pcm.astype(float) ** 2)) < 8000


@pytest.mark.parametrize(("fmt", "subtype", "ext"), [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"),
                                                      ("WAV", "PCM_24", "wav"), ("WAV", "FLOAT", "wav")])
def test_lossless_files_decode_to_exact_length_and_samples(tmp_path, fmt, subtype, ext):
    rng = np.random.default_rng(3)
    pcm = rng.integers(-30000, 30000, (44_101, 2), dtype=np.int16)
    path = tmp_path / f"x.{ext}"
    # a float file holds samples in [-1, 1): the int16 values as soundfile decodes them (n / 32768)
    sf.write(path, pcm / 32768.0 if subtype == "FLOAT" else pcm, 24000, format=fmt, subtype=subtype)
    clip = load_clip(str(path), 24000, channels=2)
    assert clip.frames == 44_101
    assert np.array_equal(clip.pcm, pcm.reshape(-1))


@pytest.mark.parametrize(("fmt", "subtype", "ext"), [("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")])
def test_lossy_files_decode_with_correct_pitch(tmp_path, fmt, subtype, ext):
    path = tmp_path / f"x.{ext}"
    write_tone(path, 44100, seconds=1.0, freq=1000.0, fmt=fmt, subtype=subtype)
    clip = load_clip(str(path), 16000, looping=False)
    assert abs(clip.duration - 1.0) < 0.08
    assert abs(peak_hz(clip.pcm / 32768.0, 16000) - 1000.0) <= 2.0


def test_encoded_bytes_load_like_a_file(tmp_path):
    path = tmp_path / "t.wav"
    write_tone(path, 16000)
    assert np.array_equal(load_clip(path.read_bytes(), 24000).pcm, load_clip(str(path), 24000).pcm)


def test_channels_are_mixed_down_and_up(tmp_path):
    left = tone(500.0, 24000, 0.2)
    stereo = np.stack([left, -left], axis=1)  # averages to silence
    sf.write(tmp_path / "s.wav", stereo, 24000, subtype="PCM_16")
    assert np.max(np.abs(load_clip(str(tmp_path / "s.wav"), 24000, channels=1).pcm)) <= 1
    sf.write(tmp_path / "m.wav", left, 24000, subtype="PCM_16")
    up = load_clip(str(tmp_path / "m.wav"), 48000, channels=2).pcm.reshape(-1, 2)
    assert np.array_equal(up[:, 0], up[:, 1]) and up.shape[0] == 9600


def test_raw_pcm_at_another_rate_is_resampled():
    pcm = np.rint(tone(1000.0, 22050, 1.0) * 32767).astype(np.int16)
    clip = clip_from_pcm(pcm.tobytes(), 22050, 1, 48000, looping=False)
    assert clip.frames == 48000
    assert abs(peak_hz(clip.pcm / 32768.0, 48000) - 1000.0) <= 1.0
    assert not clip.pcm.flags.writeable


def test_bad_sources_raise_invalid_argument_naming_the_field(tmp_path):
    cases = []
    cases.append(lambda: load_clip(str(tmp_path / "missing.wav"), 24000))
    cases.append(lambda: load_clip(str(tmp_path), 24000))  # a directory
    (tmp_path / "empty.wav").write_bytes(b"")
    cases.append(lambda: load_clip(str(tmp_path / "empty.wav"), 24000))
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all" * 20)
    cases.append(lambda: load_clip(str(tmp_path / "junk.wav"), 24000))
    cases.append(lambda: load_clip(b"RIFF\x00\x00", 24000))
    cases.append(lambda: load_clip(b"", 24000))
    cases.append(lambda: load_clip("builtin:nope", 24000))
    sf.write(tmp_path / "zero.wav", np.zeros(0, dtype=np.int16), 24000)
    cases.append(lambda: load_clip(str(tmp_path / "zero.wav"), 24000))
    for case in cases:
        with pytest.raises(InvalidArgument) as err:
            case()
        assert err.value.field == "layer.source"


def test_size_limits_are_clear_errors(tmp_path):
    path = tmp_path / "long.wav"
    write_tone(path, 24000, seconds=2.0)
    with pytest.raises(InvalidArgument, match="over the limit of 1000"):
        load_clip(str(path), 24000, max_bytes=1000)
    with pytest.raises(InvalidArgument, match="over the limit of 1 s"):
        load_clip(str(path), 24000, max_seconds=1.0)
    with pytest.raises(InvalidArgument, match="over the limit"):
        load_clip(path.read_bytes(), 24000, max_bytes=1000)


def test_bad_pcm_is_rejected():
    with pytest.raises(InvalidArgument, match="odd byte length"):
        clip_from_pcm(b"\x00\x01\x02", 24000, 1, 24000)
    with pytest.raises(InvalidArgument, match="wrong sample width"):
        clip_from_pcm(np.zeros(10, dtype=np.float32), 24000, 1, 24000)
    with pytest.raises(InvalidArgument, match="wrong sample width"):
        clip_from_pcm(memoryview(np.zeros(10, dtype=np.int32)), 24000, 1, 24000)
    with pytest.raises(InvalidArgument, match="empty"):
        clip_from_pcm(b"", 24000, 1, 24000)
    with pytest.raises(InvalidArgument, match="whole number"):
        clip_from_pcm(b"\x00\x00" * 3, 24000, 2, 24000)
