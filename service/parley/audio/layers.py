"""Layer sounds: decode a file or raw PCM once, convert it to the output format.

Decoding uses soundfile (libsndfile: WAV, FLAC, OGG/Vorbis/Opus, MP3), which
returns exactly the frames the file holds. Conversion happens at load, never
per frame: channels are averaged to mono or duplicated to stereo, and the rate
is changed with soxr VHQ. A clip meant to loop is resampled as a circle (the
filter sees the clip's end before its start and its start after its end), so
the seam carries no filter ringing and no padding; the output length is
round(frames * out_rate / in_rate), keeping the duration exact.

A looping clip whose ends do not meet (its wrap jumps further than any step
inside the clip: a loop cut at an arbitrary point) gets a seam crossfade:
its last SEAM_CROSSFADE_MS fade into its first ones, and the loop then
starts right after them, so it is that much shorter. The crossfade is
linear (the two gains sum to one), so no step through it is larger than the
signal's own largest step, give or take the fade's slope. A clip that
already loops cleanly is left sample for sample as it is.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from importlib import resources

import numpy as np
import soundfile as sf
import soxr

from parley.audio.pcm import PcmLike, as_int16, fit_length, float_to_int16
from parley.errors import InvalidArgument

#: Built-in sounds, by the name used in "builtin:<name>" sources.
BUILTIN_SOUNDS = {"ambience": "ambience.wav", "thinking": "thinking.wav"}
#: The built-in sound each layer plays when its source is empty.
LAYER_DEFAULT_SOUND = {"background": "ambience", "thinking": "thinking"}
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_SECONDS = 600.0
#: Circular padding for loop resampling, in seconds of source: far longer
#: than soxr's VHQ filter, whose impulse response lasts a few milliseconds.
LOOP_PAD_SECONDS = 0.05
#: Length of the crossfade that joins the ends of a loop that does not meet itself.
SEAM_CROSSFADE_MS = 30


@dataclass(frozen=True, eq=False)
class Clip:
    """A sound in the output format: int16, interleaved if stereo, read-only."""

    pcm: np.ndarray
    sample_rate: int
    channels: int
    source: str

    @property
    def frames(self) -> int:
        return self.pcm.size // self.channels

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def is_builtin_source(source: str) -> bool:
    """"" (the layer's own sound) or "builtin:<name>"."""
    return not source or source.startswith("builtin:")


def is_known_builtin(source: str) -> bool:
    return not source or source.removeprefix("builtin:") in BUILTIN_SOUNDS


def load_clip(
    source: str | bytes,
    sample_rate: int,
    channels: int = 1,
    *,
    layer: str = "background",
    looping: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    field: str = "layer.source",
) -> Clip:
    """Decode an audio file (a path, "builtin:<name>", "" or encoded bytes).

    "" picks the built-in sound of `layer`. `looping` selects seam-exact
    (circular) resampling. Raises InvalidArgument naming `field` for a missing,
    empty, oversized, unsupported or corrupt file.
    """
    _check_format(sample_rate, channels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = f"<{len(data)} bytes>"
        if not data:
            raise InvalidArgument(field, "empty audio data")
        if len(data) > max_bytes:
            raise InvalidArgument(field, f"audio data is {len(data)} bytes, over the limit of {max_bytes}")
        opened: str | io.BytesIO = io.BytesIO(data)
    elif isinstance(source, str):
        name = source or f"builtin:{LAYER_DEFAULT_SOUND.get(layer, '')}"
        opened = _resolve_path(name, field)
        try:
            size = os.path.getsize(opened)
        except OSError as exc:
            raise InvalidArgument(field, f"cannot read {name!r}: {exc.strerror}") from None
        if size == 0:
            raise InvalidArgument(field, f"{name!r} is an empty file")
        if size > max_bytes:
            raise InvalidArgument(field, f"{name!r} is {size} bytes, over the limit of {max_bytes}")
    else:
        raise InvalidArgument(field, f"expected a path or bytes, got {type(source).__name__}")

    try:
        with sf.SoundFile(opened) as f:
            in_rate, frames = f.samplerate, f.frames
            if frames / in_rate > max_seconds:
                raise InvalidArgument(
                    field, f"{name!r} lasts {frames / in_rate:.1f} s, over the limit of {max_seconds:g} s"
                )
            # always decoded as float: libsndfile hands a float file to an int16 read unscaled (silence)
            data_arr = f.read(dtype="float64", always_2d=True)
    except InvalidArgument:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise InvalidArgument(field, f"unsupported or corrupt audio file {name!r}: {exc}") from None
    if len(data_arr) == 0:
        raise InvalidArgument(field, f"{name!r} holds no audio samples")
    pcm = _convert(data_arr, in_rate, sample_rate, channels, looping)
    if looping:
        pcm = join_loop_ends(pcm, sample_rate, channels)
    return _freeze(pcm, sample_rate, channels, name)


def clip_from_pcm(
    pcm: PcmLike,
    pcm_rate: int,
    pcm_channels: int,
    sample_rate: int,
    channels: int = 1,
    *,
    looping: bool = True,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    field: str = "layer.pcm",
) -> Clip:
    """Make a clip from raw int16 PCM (interleaved) at any rate and channel count."""
    _check_format(sample_rate, channels)
    if not 1000 <= pcm_rate <= 384_000 or pcm_channels < 1:
        raise InvalidArgument(field, f"bad PCM format: {pcm_rate} Hz, {pcm_channels} channels")
    arr = as_int16(pcm, pcm_channels, field)
    if arr.size == 0:
        raise InvalidArgument(field, "empty PCM")
    if arr.size / pcm_channels / pcm_rate > max_seconds:
        raise InvalidArgument(field, f"PCM lasts over the limit of {max_seconds:g} s")
    frames = arr.reshape(-1, pcm_channels)
    if pcm_rate == sample_rate and pcm_channels == channels:
        out = frames.reshape(-1).copy()
    else:
        out = _convert(frames / 32768.0, pcm_rate, sample_rate, channels, looping)
    if looping:
        out = join_loop_ends(out, sample_rate, channels)
    return _freeze(out, sample_rate, channels, f"<pcm {pcm_rate} Hz x{pcm_channels}>")


def join_loop_ends(pcm: np.ndarray, sample_rate: int, channels: int) -> np.ndarray:
    """Crossfade the seam of a loop whose wrap jumps further than any step inside it (see the module notes).

    Returns `pcm` itself when the loop already meets; otherwise a new clip
    shorter by the crossfade (at most a quarter of the clip).
    """
    frames = pcm.reshape(-1, channels).astype(np.int32)
    if len(frames) < 8:
        return pcm
    inside = np.max(np.abs(np.diff(frames, axis=0)))
    if np.max(np.abs(frames[0] - frames[-1])) <= inside:
        return pcm
    n = min(sample_rate * SEAM_CROSSFADE_MS // 1000, len(frames) // 4)
    rise = (np.arange(1, n + 1) / (n + 1))[:, None]  # the head's gain; the tail's is 1 - rise
    seam = frames[-n:] * (1.0 - rise) + frames[:n] * rise
    joined = np.concatenate([frames[n:-n], np.rint(seam).astype(np.int32)])
    return joined.astype(np.int16).reshape(-1)


def _resolve_path(name: str, field: str) -> str:
    if name.startswith("builtin:"):
        sound = BUILTIN_SOUNDS.get(name.removeprefix("builtin:"))
        if sound is None:
            raise InvalidArgument(field, f"unknown built-in sound {name!r}; known: {sorted(BUILTIN_SOUNDS)}")
        return str(resources.files("parley.audio").joinpath("sounds", sound))
    if not os.path.isfile(name):
        raise InvalidArgument(field, f"no such file: {name!r}")
    return name


def _convert(x: np.ndarray, in_rate: int, out_rate: int, channels: int, looping: bool) -> np.ndarray:
    """float64 (frames, ch) in [-1, 1) -> int16 interleaved in the output format."""
    if x.shape[1] != channels:
        if channels == 2 and x.shape[1] == 1:
            x = np.repeat(x, 2, axis=1)
        else:  # to mono, or more than two channels to stereo: average, then copy
            mono = x.mean(axis=1, keepdims=True)
            x = mono if channels == 1 else np.repeat(mono, 2, axis=1)
    if in_rate != out_rate:
        x = _resample_loop(x, in_rate, out_rate) if looping else _resample_once(x, in_rate, out_rate)
    return float_to_int16(x).reshape(-1)


def _resample_once(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    y = soxr.resample(x, in_rate, out_rate, quality="VHQ")
    return fit_length(y, round(len(x) * out_rate / in_rate))


def _resample_loop(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample one period of a periodic signal without edge effects at the seam.

    The clip is extended on both sides with its own wrapped content by a pad
    that is a whole number of resampling periods (in_rate/gcd input frames map
    to exactly out_rate/gcd output frames), so the kept output window starts
    on an exact output sample.
    """
    g = math.gcd(in_rate, out_rate)
    step_in, step_out = in_rate // g, out_rate // g
    pad = math.ceil(LOOP_PAD_SECONDS * in_rate / step_in) * step_in
    tiled = np.tile(x, (math.ceil(pad / len(x)), 1))
    extended = np.concatenate([tiled[len(tiled) - pad :], x, tiled[:pad]])
    y = soxr.resample(extended, in_rate, out_rate, quality="VHQ")
    start = pad // step_in * step_out
    return fit_length(y[start:], round(len(x) * out_rate / in_rate))


def _freeze(pcm: np.ndarray, sample_rate: int, channels: int, source: str) -> Clip:
    pcm = np.ascontiguousarray(pcm, dtype=np.int16)
    pcm.flags.writeable = False
    return Clip(pcm, sample_rate, channels, source)


def _check_format(sample_rate: int, channels: int) -> None:
    if not 8000 <= sample_rate <= 48000:
        raise InvalidArgument("sample_rate", f"output rate must be 8000..48000 Hz, got {sample_rate}")
    if channels not in (1, 2):
        raise InvalidArgument("channels", f"must be 1 or 2, got {channels}")
