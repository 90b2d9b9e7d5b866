"""espeak-ng through ctypes, from the library and data that `espeakng-loader` ships.

espeak-ng keeps one global synthesizer per process, so there is one
EspeakEngine per process and every call takes its lock. A synthesis of one
text piece takes milliseconds; the lock is never held while waiting for a
consumer.
"""

from __future__ import annotations

import ctypes
import re
import threading
from functools import cache

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0
_RATE, _PITCH = 1, 3
_BUFFER_MS = 1000  # audio per callback: each callback takes the GIL, so few and cheap ones
_EVENT_LIST_END, _EVENT_WORD = 0, 1
_WORD = re.compile(r"\S+")


class _Event(ctypes.Structure):
    """espeak_EVENT (speak_lib.h): what the synth callback reports beside the audio."""

    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8),
    ]  # fmt: skip


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class EspeakEngine:
    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        data = espeakng_loader.get_data_path().encode()
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data, 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate})")
        self.sample_rate: int = rate
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._word_positions: list[tuple[int, int]] = []  # (character position, first sample)
        self._callback = _SYNTH_CALLBACK(self._on_audio)  # kept alive with the engine
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: ctypes._Pointer, count: int, events: ctypes._Pointer) -> int:
        if count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        i = 0
        while events and events[i].type != _EVENT_LIST_END:
            if events[i].type == _EVENT_WORD:
                self._word_positions.append((events[i].text_position - 1, events[i].sample))
            i += 1
        return 0

    def has_voice(self, voice: str) -> bool:
        with self._lock:
            return self._lib.espeak_SetVoiceByName(voice.encode()) == _EE_OK

    def synthesize(self, text: str, voice: str, rate_wpm: int, pitch: int) -> tuple[np.ndarray, list[int]]:
        """All audio for `text`, and the first sample of each of its words (blocking; run it off the loop).

        Word starts come from espeak's word events; a word it reports no event
        for (rare: a symbol it skips) gets none, so the list may be shorter.
        """
        encoded = text.encode("utf-8") + b"\0"
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ValueError(f"unknown espeak voice {voice!r}")
            self._lib.espeak_SetParameter(_RATE, rate_wpm, 0)
            self._lib.espeak_SetParameter(_PITCH, pitch, 0)
            self._chunks, self._word_positions = [], []
            status = self._lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
            chunks, self._chunks = self._chunks, []
            positions, self._word_positions = self._word_positions, []
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed ({status})")
        audio = np.frombuffer(bytearray().join(chunks), dtype=np.int16)  # writable, one copy
        return audio, word_starts(text, positions)


def word_starts(text: str, positions: list[tuple[int, int]]) -> list[int]:
    """First sample of each word of `text.split()`, from (character position, sample) events.

    A word espeak reports no event for (a lone symbol it does not speak)
    starts where the next reported word starts; words after the last event
    get none, so the list may be shorter than the words.
    """
    spans = [m.span() for m in _WORD.finditer(text)]
    found: list[int | None] = [None] * len(spans)
    word = 0
    for position, sample in sorted(positions):
        while word < len(spans) and spans[word][1] <= position:
            word += 1
        if word < len(spans) and spans[word][0] <= position and found[word] is None:
            found[word] = sample
    while found and found[-1] is None:
        found.pop()
    starts: list[int] = []
    for index in range(len(found) - 1, -1, -1):  # fill gaps from the right, keep the starts increasing
        value = found[index]
        starts.append(value if value is not None and (not starts or value <= starts[-1]) else starts[-1])
    return starts[::-1]


@cache
def engine() -> EspeakEngine:
    """The process's espeak-ng (loaded on first use)."""
    return EspeakEngine()
