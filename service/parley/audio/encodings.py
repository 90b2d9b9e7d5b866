"""Sample encodings on a stream's wire: 16-bit linear PCM and G.711 (µ-law, A-law).

A stream picks one `SampleCodec` per direction when it attaches; the session
then calls `decode` on every chunk in and `encode` on every frame out, and
never looks at the encoding again.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from parley.audio import g711
from parley.errors import InvalidArgument

G711_RATE = 8000


class Encoding(enum.Enum):
    LINEAR16 = "linear16"  # signed 16-bit little-endian, channels interleaved
    MULAW = "mulaw"        # G.711 µ-law: one byte per sample, 8 kHz mono
    ALAW = "alaw"          # G.711 A-law: one byte per sample, 8 kHz mono

    @property
    def telephone(self) -> bool:
        """G.711: only 8 kHz mono exists."""
        return self is not Encoding.LINEAR16


@dataclass(frozen=True)
class SampleCodec:
    """Bytes on the wire <-> int16 samples (interleaved when stereo)."""

    encoding: Encoding
    bytes_per_sample: int
    _decode: Callable[[bytes], np.ndarray]
    _encode: Callable[[np.ndarray], bytes]

    def decode(self, data: bytes, channels: int = 1, field: str = "audio.pcm") -> np.ndarray:
        """Wire bytes -> int16 samples; InvalidArgument naming `field` for a partial sample frame."""
        if len(data) % (self.bytes_per_sample * channels):
            raise InvalidArgument(
                field, f"length {len(data)} is not a whole number of {self.encoding.name} samples "
                       f"({self.bytes_per_sample} byte(s) per sample per channel, {channels} channel(s))"
            )
        return self._decode(data)

    def encode(self, pcm: np.ndarray) -> bytes:
        """int16 samples -> wire bytes."""
        return self._encode(pcm)


def _linear16_decode(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2")


def _linear16_encode(pcm: np.ndarray) -> bytes:
    return pcm.astype("<i2", copy=False).tobytes()


CODECS = {
    Encoding.LINEAR16: SampleCodec(Encoding.LINEAR16, 2, _linear16_decode, _linear16_encode),
    Encoding.MULAW: SampleCodec(Encoding.MULAW, 1, g711.mulaw_decode, g711.mulaw_encode),
    Encoding.ALAW: SampleCodec(Encoding.ALAW, 1, g711.alaw_decode, g711.alaw_encode),
}


def codec_for(encoding: Encoding) -> SampleCodec:
    return CODECS[encoding]


def check_encoding(encoding: Encoding, sample_rate_hz: int, channels: int, path: str) -> None:
    """G.711 is 8 kHz mono only: any other rate or channel count is INVALID_ARGUMENT naming the field."""
    if not encoding.telephone:
        return
    if sample_rate_hz != G711_RATE:
        raise InvalidArgument(
            f"{path}.sample_rate_hz", f"{encoding.name} is {G711_RATE} Hz only, got {sample_rate_hz}"
        )
    if channels != 1:
        raise InvalidArgument(f"{path}.channels", f"{encoding.name} is mono only, got {channels} channels")
