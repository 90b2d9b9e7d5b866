"""G.711 µ-law and A-law: 8-bit companded telephone audio <-> 16-bit PCM.

Both laws are table lookups: a 256-entry table decodes a byte to int16, a
65,536-entry table encodes any int16 (indexed by its bit pattern). The tables
are built once at import, vectorized, from the segment rules of ITU-T G.711:

µ-law  the sample is taken to 14 bits (an arithmetic shift, so negative
       values round toward minus infinity), its magnitude is clipped to 8159,
       biased by 33 and split into a 3-bit segment (the position of its
       leading one) and the 4 bits that follow; the byte is the sign, segment
       and mantissa with every bit inverted. Decoding gives the middle of the
       step, scaled back to 16 bits (±32,124 at most).
A-law  the sample is taken to 13 bits; a negative one is stored as its
       one's complement magnitude; segments 0 and 1 share the same step
       size; the byte has its even bits inverted (XOR 0x55). Decoding gives
       the middle of the step (±32,256 at most).

Silence encodes to 0xFF (µ-law) and 0xD5 (A-law).
"""

from __future__ import annotations

import numpy as np

from parley.audio.pcm import PcmLike, as_int16

_ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32)  # index i holds the sample whose uint16 bits are i - 32768


def _segment(magnitude: np.ndarray, first_end: int) -> np.ndarray:
    """Segment 0..7 of each magnitude: segment s ends at (first_end + 1) * 2**s - 1; 8 beyond the last."""
    ends = ((first_end + 1) << np.arange(8)) - 1
    return np.searchsorted(ends, magnitude, side="left")  # first s with magnitude <= ends[s]


def _mulaw_encode_table() -> np.ndarray:
    v = _ALL_INT16 >> 2
    negative = v < 0
    magnitude = np.minimum(np.abs(v), 8159) + 33
    seg = _segment(magnitude, 0x3F)
    byte = (seg << 4) | ((magnitude >> (seg + 1)) & 0x0F)
    byte = np.where(seg >= 8, 0x7F, byte)
    return _by_bit_pattern((byte ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8))


def _mulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_encode_table() -> np.ndarray:
    v = _ALL_INT16 >> 3
    negative = v < 0
    magnitude = np.where(negative, -v - 1, v)
    seg = _segment(magnitude, 0x1F)
    mantissa = np.where(seg < 2, magnitude >> 1, magnitude >> np.maximum(seg, 1)) & 0x0F
    byte = np.where(seg >= 8, 0x7F, (seg << 4) | mantissa)
    return _by_bit_pattern((byte ^ np.where(negative, 0x55, 0xD5)).astype(np.uint8))


def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _by_bit_pattern(table: np.ndarray) -> np.ndarray:
    """Reorder a table indexed by sample value (-32768..32767) to be indexed by the sample's uint16 bits."""
    return np.ascontiguousarray(np.roll(table, -32768))


MULAW_ENCODE = _mulaw_encode_table()
MULAW_DECODE = _mulaw_decode_table()
ALAW_ENCODE = _alaw_encode_table()
ALAW_DECODE = _alaw_decode_table()
for _table in (MULAW_ENCODE, MULAW_DECODE, ALAW_ENCODE, ALAW_DECODE):
    _table.flags.writeable = False


def mulaw_encode(pcm: PcmLike) -> bytes:
    """int16 samples (array, or native-endian bytes) -> one µ-law byte each."""
    return MULAW_ENCODE[as_int16(pcm).view(np.uint16)].tobytes()


def mulaw_decode(data: bytes | bytearray | memoryview) -> np.ndarray:
    """µ-law bytes -> int16 samples, one each."""
    return MULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(pcm: PcmLike) -> bytes:
    """int16 samples (array, or native-endian bytes) -> one A-law byte each."""
    return ALAW_ENCODE[as_int16(pcm).view(np.uint16)].tobytes()


def alaw_decode(data: bytes | bytearray | memoryview) -> np.ndarray:
    """A-law bytes -> int16 samples, one each."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]
