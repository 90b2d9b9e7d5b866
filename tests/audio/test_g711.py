"""G.711 µ-law / A-law against an independent oracle, bit for bit, and the stream codecs around them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from parley.audio import g711
from parley.audio.encodings import Encoding, check_encoding, codec_for
from parley.errors import InvalidArgument

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # audioop: Python 3.11's stdlib, deprecated; the oracle only
    import audioop

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)
EVERY_BYTE = bytes(range(256))


def test_mulaw_encodes_every_sample_as_the_oracle_does():
    assert g711.mulaw_encode(EVERY_SAMPLE) == audioop.lin2ulaw(EVERY_SAMPLE.tobytes(), 2)


def test_alaw_encodes_every_sample_as_the_oracle_does():
    assert g711.alaw_encode(EVERY_SAMPLE) == audioop.lin2alaw(EVERY_SAMPLE.tobytes(), 2)


def test_mulaw_decodes_every_byte_as_the_oracle_does():
    assert np.array_equal(g711.mulaw_decode(EVERY_BYTE), np.frombuffer(audioop.ulaw2lin(EVERY_BYTE, 2), np.int16))


def test_alaw_decodes_every_byte_as_the_oracle_does():
    assert np.array_equal(g711.alaw_decode(EVERY_BYTE), np.frombuffer(audioop.alaw2lin(EVERY_BYTE, 2), np.int16))


def test_silence_and_round_trips():
    silence = np.zeros(160, np.int16)
    assert g711.mulaw_encode(silence) == b"\xff" * 160
    assert g711.alaw_encode(silence) == b"\xd5" * 160
    # Every code decodes to a value that encodes back to it, except µ-law's "negative zero" (0x7F -> 0 -> 0xFF).
    back = g711.mulaw_encode(g711.mulaw_decode(EVERY_BYTE))
    assert [i for i in range(256) if back[i] != i] == [0x7F]
    assert g711.alaw_encode(g711.alaw_decode(EVERY_BYTE)) == EVERY_BYTE


def test_companding_error_grows_with_the_level_as_g711_allows():
    """Logarithmic steps: the error stays under 4 % of the level for loud samples, under 64 for quiet ones."""
    for encode, decode in ((g711.mulaw_encode, g711.mulaw_decode), (g711.alaw_encode, g711.alaw_decode)):
        x = EVERY_SAMPLE.astype(np.int64)
        error = np.abs(decode(encode(EVERY_SAMPLE)).astype(np.int64) - x)
        loud = np.abs(x) > 1024
        assert np.all(error[loud] <= 0.04 * np.abs(x[loud]))
        assert np.max(error[~loud]) <= 64


def test_codecs_decode_any_whole_number_of_samples():
    mulaw, alaw, linear = codec_for(Encoding.MULAW), codec_for(Encoding.ALAW), codec_for(Encoding.LINEAR16)
    assert mulaw.decode(b"\xff" * 37).tolist() == [0] * 37  # any byte count is whole samples
    assert alaw.decode(b"\xd5").tolist() == [8]
    assert linear.decode(b"\x01\x00\xff\xff").tolist() == [1, -1]
    with pytest.raises(InvalidArgument) as err:
        linear.decode(b"\x00\x00\x00", 1, "audio.pcm")
    assert err.value.field == "audio.pcm"
    with pytest.raises(InvalidArgument, match="2 channel"):
        linear.decode(b"\x00\x00", 2)
    frame = np.full(160, 1000, np.int16)
    assert len(mulaw.encode(frame)) == 160 and len(linear.encode(frame)) == 320


@pytest.mark.parametrize("encoding", [Encoding.MULAW, Encoding.ALAW])
def test_g711_is_8khz_mono_only(encoding):
    check_encoding(encoding, 8000, 1, "config.input_format")
    with pytest.raises(InvalidArgument) as err:
        check_encoding(encoding, 16000, 1, "config.input_format")
    assert err.value.field == "config.input_format.sample_rate_hz"
    with pytest.raises(InvalidArgument) as err:
        check_encoding(encoding, 8000, 2, "config.output_format")
    assert err.value.field == "config.output_format.channels"
    check_encoding(Encoding.LINEAR16, 48000, 2, "config.input_format")
