"""Audio for the session engine: the output mixer, layer sounds and PCM helpers."""

from parley.audio.layers import BUILTIN_SOUNDS, LAYER_DEFAULT_SOUND, Clip, clip_from_pcm, load_clip
from parley.audio.mixer import LAYER_NAMES, MixedFrame, Mixer, SpeechEnd
from parley.audio.pcm import StreamResampler, as_int16, resample, to_bytes

__all__ = [
    "BUILTIN_SOUNDS",
    "LAYER_DEFAULT_SOUND",
    "LAYER_NAMES",
    "Clip",
    "MixedFrame",
    "Mixer",
    "SpeechEnd",
    "StreamResampler",
    "as_int16",
    "clip_from_pcm",
    "load_clip",
    "resample",
    "to_bytes",
]
