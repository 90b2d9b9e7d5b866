from __future__ import annotations

import numpy as np
import pytest

from parley.audio.pcm import resample
from parley.errors import InvalidArgument
from parley.providers import registry
from parley.providers.tts import espeak_engine
from parley.providers.workers import Workers

LONG = (
    "When the storm finally passed over the valley, the farmers walked out to their fields, "
    "counted the broken fences, listened to the river rising behind the mill, and began, "
    "slowly and without a word to one another, to carry the fallen branches back to the road."
)


async def test_espeak_speaks_audible_int16_at_its_native_rate(workers: Workers) -> None:
    tts = registry.build("tts", "espeak", {}, workers=workers)
    chunks = [chunk async for chunk in tts.synthesize("what is the weather today")]
    audio = np.concatenate(chunks)
    assert tts.sample_rate == 22050
    assert audio.dtype == np.int16
    assert 0.8 < len(audio) / tts.sample_rate < 3.0
    assert np.abs(audio.astype(np.int32)).max() > 5000


async def test_espeak_yields_first_chunk_before_the_long_text_is_synthesized(
    workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = espeak_engine.engine()
    spoken: list[str] = []
    real = engine.synthesize

    def recording(text: str, *args: object) -> tuple[np.ndarray, list[int]]:
        spoken.append(text)
        return real(text, *args)

    monkeypatch.setattr(engine, "synthesize", recording)
    tts = registry.build("tts", "espeak", {}, workers=workers)
    stream = tts.synthesize(LONG)
    first = await anext(stream)
    spoken_at_first_chunk = " ".join(spoken)
    rest = [chunk async for chunk in stream]

    assert len(first) > 0 and rest
    assert len(spoken_at_first_chunk) < len(LONG) / 2
    assert " ".join(spoken).split() == LONG.split()


async def test_espeak_closing_the_stream_stops_synthesis(workers: Workers, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = espeak_engine.engine()
    calls: list[str] = []
    real = engine.synthesize
    monkeypatch.setattr(engine, "synthesize", lambda text, *a: calls.append(text) or real(text, *a))
    tts = registry.build("tts", "espeak", {}, workers=workers)
    stream = tts.synthesize(LONG)
    await anext(stream)
    await stream.aclose()
    count = len(calls)
    assert count < len(LONG.split(","))


async def test_espeak_rate_option_changes_duration(workers: Workers) -> None:
    async def seconds(rate: int) -> float:
        tts = registry.build("tts", "espeak", {"rate": rate}, workers=workers)
        return (
            sum([len(c) async for c in tts.synthesize("the quick brown fox jumps over the lazy dog")]) / tts.sample_rate
        )

    assert await seconds(120) > 1.5 * await seconds(300)


def test_espeak_unknown_voice_names_the_voice_field(workers: Workers) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.build("tts", "espeak", {}, voice="klingon-xx", workers=workers)
    assert err.value.field == "config.voice"


async def test_espeak_accepts_a_variant_voice(workers: Workers) -> None:
    tts = registry.build("tts", "espeak", {}, voice="en+f3", workers=workers)
    assert sum([len(c) async for c in tts.synthesize("hello")]) > 0


async def test_empty_text_yields_nothing(workers: Workers) -> None:
    tts = registry.build("tts", "espeak", {}, workers=workers)
    assert [c async for c in tts.synthesize("   ")] == []


async def test_tone_stand_in_length_follows_the_text(workers: Workers) -> None:
    tts = registry.build("tts", "tone", {"ms_per_char": 50}, workers=workers)
    audio = np.concatenate([c async for c in tts.synthesize("ab cd")])
    assert len(audio) == 5 * 800
    assert tts.duration_ms("ab cd") == 250
    assert np.all(audio[2 * 800 : 3 * 800] == 0)
    assert np.abs(audio[:800]).max() > 7000


async def test_espeak_word_starts_match_where_a_recognizer_hears_the_words(workers: Workers) -> None:
    """The word timings the engine reports are where the words are: Whisper, reading the audio, agrees."""
    text = "Thank you for calling, this is the weather service; how can I help you today?"
    tts = registry.build("tts", "espeak", {}, workers=workers)
    chunks = [chunk async for chunk in tts.synthesize_timed(text)]
    offsets = np.cumsum([0] + [len(c.pcm) for c in chunks])
    starts = {word: int(offsets[i] + sample) for i, c in enumerate(chunks) for word, sample in c.word_starts}
    words = text.split()
    assert sorted(starts) == list(range(len(words)))  # every word, once, in order
    assert [starts[w] for w in range(len(words))] == sorted(starts.values())

    stt = registry.build("stt", "whisper", {}, workers=workers)
    stream = stt.stream()
    audio = resample(np.concatenate([c.pcm for c in chunks]), tts.sample_rate, 16000)
    await stream.push(audio)
    heard = (await stream.finish()).words
    await stream.aclose()
    matched, after = 0, 0
    for word in heard:  # each recognized word that is one of ours, in order, starts near where espeak said
        key = word.word.strip(",.;?!").lower()
        index = next((i for i in range(after, len(words)) if words[i].strip(",.;?!").lower() == key), None)
        if index is None:
            continue
        matched, after = matched + 1, index + 1
        assert abs(starts[index] * 1000 / tts.sample_rate - word.start_ms) < 250, (word, starts[index])
    assert matched >= len(words) // 2
