"""Every sample format a WAV may hold is converted to int16, never reinterpreted: layer files and `parley talk`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mix_reference import snr_db, tone

from parley.audio import load_clip
from parley.talk import read_input

FORMATS = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]
# what each format keeps of a 0.5-amplitude tone: 8 bits hold ~38 dB of it, the rest is limited by int16 itself
MIN_SNR_DB = {"PCM_U8": 35.0}


def write(path: Path, subtype: str, rate: int = 24000) -> np.ndarray:
    """A 0.5-amplitude 440 Hz tone written in `subtype`; returns the tone (float)."""
    x = 0.5 * tone(440.0, rate, 0.5) / 0.9  # tone() is 0.9 amplitude
    sf.write(path, x, rate, subtype=subtype)
    return x


@pytest.mark.parametrize("subtype", FORMATS)
@pytest.mark.parametrize("out_rate", [24000, 16000], ids=["same rate", "resampled"])
def test_a_layer_file_of_any_sample_format_plays_as_written(tmp_path: Path, subtype: str, out_rate: int) -> None:
    write(tmp_path / "layer.wav", subtype)
    clip = load_clip(str(tmp_path / "layer.wav"), out_rate, looping=False)
    expected = 0.5 * tone(440.0, out_rate, 0.5) / 0.9
    got = clip.pcm / 32768.0
    edge = out_rate // 50  # resampling's filter edges
    assert snr_db(got[edge:-edge], expected[edge:-edge]) >= MIN_SNR_DB.get(subtype, 80.0), subtype
    assert abs(np.abs(clip.pcm).max() - 0.5 * 32768) < 400  # not silence, not clipped


@pytest.mark.parametrize("subtype", FORMATS)
def test_talk_reads_a_wav_of_any_sample_format(tmp_path: Path, subtype: str) -> None:
    x = write(tmp_path / "caller.wav", subtype, rate=16000)
    pcm, rate = read_input(str(tmp_path / "caller.wav"))
    assert rate == 16000 and pcm.dtype == np.int16 and pcm.shape == (len(x), 1)
    assert snr_db(pcm[:, 0] / 32768.0, x) >= MIN_SNR_DB.get(subtype, 80.0), subtype
