# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Per-chunk PCM steps of a call's hot paths, each one C loop with no temporary array.

The listener's VAD needs a frame's energy 50 times a second per call; in
numpy that is a float copy of the frame, a dot product and three Python
calls. Every resampled chunk (the agent's speech as the mixer takes it)
comes back from soxr as float32 and is rounded and saturated to int16; in
numpy that is three passes and two temporaries.
"""

from libc.math cimport log10
from libc.stdint cimport int16_t

import numpy as np

cdef float _ROUNDING = 12582912.0  # 1.5 x 2**23: float32 sums past it are whole numbers


def energy_db(const int16_t[:] frame) -> float:
    """10 log10 of the mean square of int16 samples (+1e-9, so silence is -90 dB); 0 samples give -90 dB."""
    cdef Py_ssize_t i, n = frame.shape[0]
    cdef double sample, total = 0.0
    with nogil:
        for i in range(n):
            sample = frame[i]
            total += sample * sample
    return 10.0 * log10(total / (n if n > 0 else 1) + 1e-9)


def round_to_int16(const float[::1] samples):
    """float32 samples on the int16 scale -> int16, rounded half to even and saturated (NaN -> 32767).

    What np.clip(np.rint(x), -32768, 32767).astype(np.int16) gives, in one
    pass without its two temporaries. Adding and taking away 1.5 x 2**23
    rounds a float32 below 2**22 to the nearest integer, ties to even (the
    default rounding mode), in plain arithmetic the compiler vectorizes; a
    call to rint per sample would not be (so no -ffast-math here: it would
    fold the two steps away).
    """
    cdef Py_ssize_t i, n = samples.shape[0]
    out = np.empty(n, dtype=np.int16)
    if n == 0:
        return out
    cdef int16_t[::1] dest = out
    cdef const float* src = &samples[0]
    cdef int16_t* dst = &dest[0]
    cdef float value
    with nogil:
        for i in range(n):
            value = src[i]
            value = value if value < <float>32767.0 else <float>32767.0
            value = value if value > <float>-32768.0 else <float>-32768.0
            dst[i] = <int16_t>((value + _ROUNDING) - _ROUNDING)
    return out
