from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from provider_speech import Speech, frames

from parley.providers import registry
from parley.providers.base import VADEvent, VADEventType
from parley.providers.workers import Workers


def run(vad_name: str, pcm: np.ndarray, workers: Workers, chunk_ms: int = 20, **options: object) -> list[VADEvent]:
    stream = registry.build("vad", vad_name, dict(options), workers=workers).stream()
    events: list[VADEvent] = []
    for chunk in frames(pcm, chunk_ms):
        events += stream.process(chunk)
    return events


@pytest.mark.parametrize("vad", ["webrtc", "silero"])
@pytest.mark.parametrize("text", ["what is the weather today", "please send the file to my office", "yes"])
async def test_vad_finds_speech_edges_within_100_ms(
    vad: str, text: str, speak: Callable[[str], Awaitable[Speech]], workers: Workers
) -> None:
    speech = await speak(text)
    events = run(vad, speech.pcm, workers)
    assert [e.type for e in events] == [VADEventType.SPEECH_START, VADEventType.SPEECH_END]
    assert abs(events[0].time_ms - speech.start_ms) <= 100
    assert abs(events[1].time_ms - speech.end_ms) <= 100


async def test_webrtc_edges_do_not_depend_on_chunk_size(
    speak: Callable[[str], Awaitable[Speech]], workers: Workers
) -> None:
    speech = await speak("what is the weather today")
    whole_frames = run("webrtc", speech.pcm, workers, chunk_ms=30)  # one 30 ms frame per chunk: the fast path
    assert run("webrtc", speech.pcm, workers, chunk_ms=7) == run("webrtc", speech.pcm, workers, chunk_ms=100)
    assert run("webrtc", speech.pcm, workers, chunk_ms=100) == whole_frames
    assert len(whole_frames) == 2


async def test_webrtc_tracks_speaking_state(speak: Callable[[str], Awaitable[Speech]], workers: Workers) -> None:
    speech = await speak("what is the weather today")
    stream = registry.build("vad", "webrtc", {}, workers=workers).stream()
    states = []
    for chunk in frames(speech.pcm):
        stream.process(chunk)
        states.append(stream.speaking)
    assert not states[0] and any(states) and not states[-1]


async def test_two_sentences_with_a_long_pause_are_two_segments(
    speak: Callable[[str], Awaitable[Speech]], workers: Workers
) -> None:
    one, two = await speak("good morning"), await speak("see you later")
    events = run("webrtc", np.concatenate([one.pcm, two.pcm]), workers)
    assert [e.type for e in events] == [VADEventType.SPEECH_START, VADEventType.SPEECH_END] * 2
    offset = len(one.pcm) / 16
    assert abs(events[2].time_ms - (offset + two.start_ms)) <= 100


@pytest.mark.parametrize("vad", ["webrtc", "silero"])
def test_silence_and_noise_floor_are_not_speech(vad: str, workers: Workers) -> None:
    rng = np.random.default_rng(1)
    quiet = (rng.standard_normal(16000 * 2) * 30).astype(np.int16)
    assert run(vad, quiet, workers) == []
    assert run(vad, np.zeros(16000, np.int16), workers) == []


def test_energy_stand_in_finds_a_tone(workers: Workers) -> None:
    t = np.arange(16000) / 16000
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    pcm = np.concatenate([np.zeros(8000, np.int16), tone, np.zeros(16000, np.int16)])
    events = run("energy", pcm, workers)
    assert [(e.type, e.time_ms) for e in events] == [
        (VADEventType.SPEECH_START, 500),
        (VADEventType.SPEECH_END, 1500),
    ]
