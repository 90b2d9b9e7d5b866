# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The PCM mix kernel: one call per output frame mixes speech and layer slots.

Over 400 lines on purpose: every per-sample path (speech, layers, fades,
ducking, seams, underruns) sits in one C loop that runs without Python.

Numbers
    Samples are int16, interleaved when there are two channels. Gains are
    float32 and the mix accumulates in float32: an int16 sample times a gain
    of at most 2, summed over five sources, stays below 2**19, where float32
    still resolves 1/32 LSB, so the sum is as good as an int32 one. Each sum
    is rounded half-to-even to an int32 and saturated to [-32768, 32767];
    nothing ever wraps. float32 is used rather than Q15 fixed point
    because int16 * float32 vectorizes at baseline x86-64 (SSE2) while 32-bit
    integer multiplies do not, and float gains need no rescaling for ramps.

Envelopes
    Every source has a fade position phi in [0, 1] and plays at
    gain * sin(pi/2 * phi) (equal power). phi moves by `rate` per sample
    frame; a fade out from anywhere continues from the level reached, so a
    stop during a fade in never jumps. Ducking has its own position kappa:
    a ducked slot plays at 1 - (1 - duck) * sin(pi/2 * kappa)**2 (a raised
    cosine in linear gain). While nothing moves, a whole frame uses one scalar
    gain per source and every loop is a plain vectorizable multiply-add.

Speech
    A ring buffer of `speech_capacity` samples, read frame by frame. `hold`
    (pause, or a playback-mode slot sounding instead of speech) fades speech
    out and then stops consuming it; releasing the hold fades back in. `cut`
    fades the next `tail` frames to silence and then returns to full level,
    for interruptions (the caller drops what should not play).

Underruns
    While `speech_open` (more speech of the current utterance is coming) and
    less than a frame plus `underrun_fade` frames is queued, speech fades out
    so that silence falls exactly on the last queued sample; the kernel then
    waits, silent, until that much is queued again (or the utterance is
    complete, or UNDERRUN_MAX_WAIT frames passed with some audio queued) and
    fades back in over `underrun_fade` frames. Audio that comes in time
    during the fade out brings the level back up from where it got. Speech
    that runs dry does not stop or restart dead. `new_utterance` ends a
    silent wait at once: the next utterance starts at full level.

One kernel must not be used from two threads at once; `mix` releases the
GIL only around its own arithmetic.
"""

from libc.stdint cimport int16_t
from libc.string cimport memcpy, memset
from cpython.mem cimport PyMem_Malloc, PyMem_Free

cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef enum:
    SLOTS = 4
    UNDERRUN_MAX_WAIT = 3   # frames a starved kernel holds a little audio back, waiting for more

# sin(pi/2 * x) Taylor coefficients in x (odd powers up to x**11): |error| < 6e-8.
cdef double Q1 = 1.5707963267948966
cdef double Q3 = -0.6459640975062462
cdef double Q5 = 0.07969262624616703
cdef double Q7 = -0.004681754135318687
cdef double Q9 = 0.00016044118478735975
cdef double Q11 = -3.5988432352120853e-06


cdef inline double qsin(double x) noexcept nogil:
    """sin(pi/2 * x) for x in [0, 1]; exactly 0 and 1 at the ends."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    cdef double x2 = x * x
    return x * (Q1 + x2 * (Q3 + x2 * (Q5 + x2 * (Q7 + x2 * (Q9 + x2 * Q11)))))


cdef inline double clamp01(double x) noexcept nogil:
    """Clamp a fade position, snapping rounding residue at the ends (fades are
    at most a few million samples, so real positions are never this close)."""
    return 0.0 if x < 1e-9 else (1.0 if x > 1.0 - 1e-9 else x)


cdef struct Slot:
    const int16_t* data
    Py_ssize_t length      # interleaved samples
    Py_ssize_t pos         # interleaved read index
    float gain
    double phi
    double rate
    bint active
    bint looping
    bint ducked
    bint playback
    bint stopping


cdef class MixKernel:
    """Mixes speech and up to four layer slots into one int16 frame per call."""

    cdef readonly int channels
    cdef readonly Py_ssize_t frame_samples   # per channel
    cdef readonly Py_ssize_t speech_capacity  # interleaved samples
    cdef readonly object out                  # int16 frame, rewritten by mix()
    cdef Py_ssize_t n                         # interleaved samples per frame
    cdef int16_t* _out
    cdef float* _acc
    cdef float* _gain
    cdef float* _duck
    cdef int16_t* _ring
    cdef Py_ssize_t r_pos, r_count
    cdef float speech_gain
    cdef double s_phi, s_rate
    cdef bint paused, held
    cdef double hold_out_rate, hold_in_rate
    cdef Py_ssize_t cut_left
    cdef Py_ssize_t last_ns                   # speech frames mixed in the previous frame
    cdef public bint speech_open              # more speech of the queued utterance may come
    cdef Py_ssize_t under_len                 # underrun fade, in sample frames (0: off)
    cdef bint draining, starved               # fading out ahead of an underrun / silent in one
    cdef int starved_frames                   # frames waited, silent, with some audio queued
    cdef double kappa, duck_lin, duck_attack_rate, duck_release_rate
    cdef Slot slots[SLOTS]
    cdef list _clips

    def __cinit__(self, int channels, Py_ssize_t frame_samples, Py_ssize_t speech_capacity):
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        if frame_samples <= 0 or speech_capacity <= 0:
            raise ValueError("frame_samples and speech_capacity must be positive")
        self.channels = channels
        self.frame_samples = frame_samples
        self.n = frame_samples * channels
        self.speech_capacity = speech_capacity - speech_capacity % channels
        self.out = np.zeros(self.n, dtype=np.int16)
        self._out = <int16_t*> cnp.PyArray_DATA(self.out)
        self._acc = <float*> PyMem_Malloc(self.n * sizeof(float))
        self._gain = <float*> PyMem_Malloc(frame_samples * sizeof(float))
        self._duck = <float*> PyMem_Malloc(frame_samples * sizeof(float))
        self._ring = <int16_t*> PyMem_Malloc(self.speech_capacity * sizeof(int16_t))
        if not (self._acc and self._gain and self._duck and self._ring):
            raise MemoryError()
        self.speech_gain = 1.0
        self.s_phi = 1.0
        self.cut_left = -1
        self.duck_lin = 1.0
        self.duck_attack_rate = 1.0
        self.duck_release_rate = 1.0
        self.hold_out_rate = 1.0
        self.hold_in_rate = 1.0
        self._clips = [None] * SLOTS

    def __dealloc__(self):
        PyMem_Free(self._acc)
        PyMem_Free(self._gain)
        PyMem_Free(self._duck)
        PyMem_Free(self._ring)

    # ---- speech ---------------------------------------------------------------

    @property
    def speech_queued(self) -> int:
        """Sample frames of speech waiting to be mixed."""
        return self.r_count // self.channels

    @property
    def speech_level(self) -> float:
        """Current speech envelope position (0 silent, 1 full)."""
        return self.s_phi

    @property
    def speech_held(self) -> bool:
        """Whether speech is paused or replaced by a playback-mode slot."""
        return self.held

    def push(self, const int16_t[::1] pcm not None) -> bool:
        """Append interleaved speech; False (and nothing queued) if it does not fit."""
        cdef Py_ssize_t m = pcm.shape[0], w, first
        if m % self.channels:
            raise ValueError("speech length must be a whole number of sample frames")
        if self.r_count + m > self.speech_capacity:
            return False
        if m == 0:
            return True
        w = (self.r_pos + self.r_count) % self.speech_capacity
        first = min(m, self.speech_capacity - w)
        memcpy(self._ring + w, &pcm[0], first * sizeof(int16_t))
        if first < m:
            memcpy(self._ring, &pcm[first], (m - first) * sizeof(int16_t))
        self.r_count += m
        return True

    def remove(self, Py_ssize_t offset, Py_ssize_t count) -> None:
        """Drop `count` queued sample frames starting `offset` frames after the read point."""
        cdef Py_ssize_t ch = self.channels, cap = self.speech_capacity
        cdef Py_ssize_t queued = self.r_count // ch, i, later, dst, src
        if offset < 0 or count < 0 or offset + count > queued:
            raise ValueError("range outside the queued speech")
        later = (queued - offset - count) * ch
        dst = self.r_pos + offset * ch
        src = dst + count * ch
        for i in range(later):
            self._ring[(dst + i) % cap] = self._ring[(src + i) % cap]
        self.r_count -= count * ch

    def cut(self, Py_ssize_t tail) -> None:
        """Fade speech to silence over the next `tail` frames, then back to full level."""
        if tail < 0:
            raise ValueError("tail must be >= 0")
        self.draining = self.starved = False
        if tail == 0 or self.s_phi <= 0.0:
            self.cut_left = -1
            self.s_phi = 0.0 if self.held else 1.0
            self.s_rate = 0.0
        else:
            self.cut_left = tail
            self.s_rate = -self.s_phi / tail

    def set_paused(self, bint paused, Py_ssize_t fade) -> None:
        """Pause (fade out over `fade` frames, then hold) or resume (fade in)."""
        if fade < 0:
            raise ValueError("fade must be >= 0")
        if paused:
            self.hold_out_rate = 1.0 / fade if fade else 2.0
        else:
            self.hold_in_rate = 1.0 / fade if fade else 2.0
        self.paused = paused

    def set_hold_fades(self, Py_ssize_t fade_out, Py_ssize_t fade_in) -> None:
        """Fade lengths used when a playback-mode slot takes over speech or gives it back."""
        if fade_out < 0 or fade_in < 0:
            raise ValueError("fades must be >= 0")
        self.hold_out_rate = 1.0 / fade_out if fade_out else 2.0
        self.hold_in_rate = 1.0 / fade_in if fade_in else 2.0

    def set_speech_gain(self, float gain) -> None:
        self.speech_gain = gain

    def set_underrun_fade(self, Py_ssize_t fade) -> None:
        """Fade length around a speech underrun, in sample frames (0 turns the fades off)."""
        if fade < 0:
            raise ValueError("fade must be >= 0")
        self.under_len = fade

    def new_utterance(self) -> None:
        """The speech pushed next starts an utterance: a silent underrun wait ends, at full level."""
        if not self.starved:
            return
        self.starved = False
        if self.r_count:  # the last utterance's leftover waits: fade it in, then the new one follows
            self.s_rate = 1.0 / self.under_len
        else:
            self.s_phi = 0.0 if self.held else 1.0
            self.s_rate = 0.0

    @property
    def speech_starved(self) -> bool:
        """Whether speech ran dry mid-utterance and waits, silent, for more."""
        return self.starved

    # ---- slots ----------------------------------------------------------------

    def slot_play(self, int i, cnp.ndarray clip not None, float gain, bint looping,
                  bint playback, bint ducked, Py_ssize_t fade_in) -> None:
        """Start `clip` (C-contiguous int16, interleaved) in slot i from its start."""
        self._check_slot(i)
        if clip.dtype != np.int16 or clip.ndim != 1 or not clip.flags.c_contiguous:
            raise ValueError("clip must be a 1-D C-contiguous int16 array")
        if clip.shape[0] == 0 or clip.shape[0] % self.channels:
            raise ValueError("clip must hold a positive whole number of sample frames")
        if fade_in < 0:
            raise ValueError("fade_in must be >= 0")
        self._clips[i] = clip
        cdef Slot* s = &self.slots[i]
        s.data = <const int16_t*> cnp.PyArray_DATA(clip)
        s.length = clip.shape[0]
        s.pos = 0
        s.gain = gain
        s.looping = looping
        s.playback = playback
        s.ducked = ducked
        s.stopping = False
        s.active = True
        if fade_in == 0:
            s.phi, s.rate = 1.0, 0.0
        else:
            s.phi, s.rate = 0.0, 1.0 / fade_in

    def slot_stop(self, int i, Py_ssize_t fade) -> None:
        """Fade slot i out over `fade` frames (from its current level) and free it."""
        self._check_slot(i)
        cdef Slot* s = &self.slots[i]
        if not s.active:
            return
        s.stopping = True
        if fade <= 0 or s.phi <= 0.0:
            s.phi, s.rate = 0.0, 0.0
            self._release(i)
        else:
            s.rate = -1.0 / fade

    def slot_active(self, int i) -> bool:
        self._check_slot(i)
        return self.slots[i].active

    def slot_stopping(self, int i) -> bool:
        self._check_slot(i)
        return self.slots[i].active and self.slots[i].stopping

    def set_ducking(self, double duck_lin, Py_ssize_t attack, Py_ssize_t release) -> None:
        """Ducked slots play at `duck_lin` under speech, ramping over attack/release frames."""
        self.duck_lin = duck_lin
        self.duck_attack_rate = 1.0 / attack if attack > 0 else 2.0
        self.duck_release_rate = 1.0 / release if release > 0 else 2.0

    cdef int _check_slot(self, int i) except -1:
        if not 0 <= i < SLOTS:
            raise IndexError("slot out of range")
        return 0

    cdef void _release(self, int i) noexcept:
        self.slots[i].active = False
        self.slots[i].data = NULL
        self._clips[i] = None

    # ---- mixing ---------------------------------------------------------------

    def mix(self) -> int:
        """Mix one frame into `out`; returns the sample frames of speech it consumed."""
        cdef Py_ssize_t ns
        cdef int i
        with nogil:
            ns = self._mix()
        for i in range(SLOTS):
            if self.slots[i].active and self.slots[i].data == NULL:
                self._release(i)
        return ns

    cdef Py_ssize_t _mix(self) noexcept nogil:
        cdef Py_ssize_t ns = self._mix_speech()
        self.last_ns = ns
        cdef bint kappa_moves = self._duck_envelope(ns > 0)
        cdef int i
        for i in range(SLOTS):
            if self.slots[i].active:
                self._mix_slot(&self.slots[i], kappa_moves)
        self._saturate()
        return ns

    cdef Py_ssize_t _mix_speech(self) noexcept nogil:
        cdef Py_ssize_t F = self.frame_samples, ch = self.channels, cap = self.speech_capacity
        cdef Py_ssize_t ns, t, i, c, k, first
        cdef bint hold = self.paused
        cdef double phi
        cdef float g = 0.0
        cdef float* acc = self._acc
        cdef const int16_t* src
        for i in range(SLOTS):
            if self.slots[i].active and self.slots[i].playback and not self.slots[i].stopping:
                hold = True
        if hold != self.held:
            self.held = hold
            if self.cut_left < 0:
                self.s_rate = -self.hold_out_rate if hold else self.hold_in_rate
                if hold and self.last_ns == 0:
                    self.s_phi, self.s_rate = 0.0, 0.0   # nothing sounding: no fade needed
        if self.under_len and not self.held and self.cut_left < 0:
            self._underrun_envelope()
        if self.cut_left < 0 and self.s_phi >= 1.0 and self.s_rate > 0.0:
            self.s_rate = 0.0
        if self.cut_left < 0 and self.s_phi <= 0.0 and self.s_rate <= 0.0:
            self.s_rate = 0.0
            ns = 0   # held in silence: nothing consumed
        else:
            ns = min(self.r_count // ch, F)
            if self.cut_left >= 0:
                ns = min(ns, self.cut_left)
        if ns == 0:
            memset(acc, 0, self.n * sizeof(float))
            if self.cut_left >= 0 or self.s_rate != 0.0:
                # Nothing is sounding, so a pending fade can finish at once.
                self.cut_left = -1
                self.s_phi = 0.0 if self.held else 1.0
                self.s_rate = 0.0
            return 0

        if self.s_rate == 0.0:
            g = <float> (self.speech_gain * qsin(self.s_phi))
            k = 0
            while k < ns * ch:
                first = min(ns * ch - k, cap - self.r_pos)
                src = self._ring + self.r_pos
                for i in range(first):
                    acc[k + i] = <float> src[i] * g
                k += first
                self.r_pos = (self.r_pos + first) % cap
        else:
            phi = self.s_phi
            for t in range(ns):
                phi = clamp01(self.s_phi + self.s_rate * (t + 1))
                self._gain[t] = <float> (self.speech_gain * qsin(phi))
                if phi <= 0.0 and self.cut_left < 0:
                    ns = t + 1   # the pause fade ends here: hold from the next sample
                    break
            for t in range(ns):
                for c in range(ch):
                    acc[t * ch + c] = <float> self._ring[self.r_pos] * self._gain[t]
                    self.r_pos += 1
                    if self.r_pos == cap:
                        self.r_pos = 0
            self.s_phi = phi
            if phi >= 1.0 or phi <= 0.0:
                self.s_rate = 0.0
            if self.draining and phi <= 0.0:
                self.draining, self.starved, self.starved_frames = False, True, 0
        self.r_count -= ns * ch
        if ns < F:
            memset(acc + ns * ch, 0, (F - ns) * ch * sizeof(float))
        if self.cut_left >= 0:
            self.cut_left -= ns
            if self.cut_left == 0:
                self.cut_left = -1
                self.s_phi = 0.0 if self.held else 1.0
                self.s_rate = 0.0
        return ns

    cdef void _underrun_envelope(self) noexcept nogil:
        """Steer the speech envelope around an underrun (see Underruns above)."""
        cdef Py_ssize_t queued = self.r_count // self.channels
        cdef bint enough = queued >= self.frame_samples + self.under_len or not self.speech_open
        if self.starved:
            if queued > 0 and (enough or self.starved_frames >= UNDERRUN_MAX_WAIT):
                self.starved = False
                self.s_rate = 1.0 / self.under_len   # fade back in from silence
            else:
                self.starved_frames += queued > 0
                self.s_phi, self.s_rate = 0.0, 0.0    # wait, silent, for enough speech
        elif not enough and queued > 0 and self.s_phi > 0.0:
            self.draining = True
            self.s_rate = -self.s_phi / queued       # silence exactly on the last queued sample
        elif self.draining and enough:
            self.draining = False
            self.s_rate = 1.0 / self.under_len       # more came in time: back up from the level reached

    cdef bint _duck_envelope(self, bint speech) noexcept nogil:
        """Advance kappa toward 1 (speech) or 0; fill _duck per sample if it moves."""
        cdef double target = 1.0 if speech else 0.0, rate, kap, s
        cdef Py_ssize_t t
        if self.kappa == target:
            return False
        rate = self.duck_attack_rate if speech else -self.duck_release_rate
        kap = self.kappa
        for t in range(self.frame_samples):
            kap = clamp01(self.kappa + rate * (t + 1))
            s = qsin(kap)
            self._duck[t] = <float> (1.0 - (1.0 - self.duck_lin) * s * s)
        self.kappa = kap
        return True

    cdef void _mix_slot(self, Slot* s, bint kappa_moves) noexcept nogil:
        cdef Py_ssize_t F = self.frame_samples, ch = self.channels, n = self.n
        cdef Py_ssize_t t, i, k, first
        cdef double phi = s.phi, d, sk
        cdef float g = 0.0
        cdef float* acc = self._acc
        cdef float* gain = self._gain
        cdef const int16_t* src
        cdef bint ramp = s.rate != 0.0 or (s.ducked and kappa_moves)
        if ramp:
            for t in range(F):
                if s.rate != 0.0:
                    phi = clamp01(s.phi + s.rate * (t + 1))
                gain[t] = <float> (s.gain * qsin(phi))
                if s.ducked:
                    if kappa_moves:
                        gain[t] *= self._duck[t]
                    else:
                        sk = qsin(self.kappa)
                        gain[t] *= <float> (1.0 - (1.0 - self.duck_lin) * sk * sk)
            s.phi = phi
            if phi >= 1.0 or phi <= 0.0:
                s.rate = 0.0
        else:
            d = s.gain * qsin(phi)
            if s.ducked:
                sk = qsin(self.kappa)
                d *= 1.0 - (1.0 - self.duck_lin) * sk * sk
            g = <float> d
        k = 0
        while k < n and s.data != NULL:
            first = min(n - k, s.length - s.pos)
            src = s.data + s.pos
            if not ramp:
                for i in range(first):
                    acc[k + i] += <float> src[i] * g
            elif ch == 1:
                for i in range(first):
                    acc[k + i] += <float> src[i] * gain[k + i]
            else:
                for i in range(first):
                    acc[k + i] += <float> src[i] * gain[(k + i) // 2]
            k += first
            s.pos += first
            if s.pos == s.length:
                s.pos = 0
                if not s.looping:
                    s.data = NULL   # one-shot done: released after the GIL is back
        if s.stopping and s.phi <= 0.0:
            s.data = NULL

    cdef void _saturate(self) noexcept nogil:
        """Round the float sums half-to-even to int32, then saturate to int16."""
        cdef Py_ssize_t i
        cdef int v
        cdef float magic = 12582912.0   # 1.5 * 2**23: adding and removing it rounds to an integer
        cdef float* acc = self._acc
        cdef int16_t* out = self._out
        for i in range(self.n):
            v = <int> ((acc[i] + magic) - magic)
            v = v if v < 32767 else 32767
            v = v if v > -32768 else -32768
            out[i] = <int16_t> v
