"""Fixtures for provider tests: a worker pool and real synthesized speech."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest
from openai_stand_in import StandInOpenAIServer
from provider_speech import LEAD_MS, TAIL_MS, Speech

from parley.audio.pcm import resample
from parley.providers import registry
from parley.providers.workers import Workers


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    pool = Workers(threads=2)
    yield pool
    pool.close()


@pytest.fixture
def speak(workers: Workers) -> Callable[[str], Awaitable[Speech]]:
    """Speak a text with the default TTS, resampled to 16 kHz and padded."""

    async def speak(text: str) -> Speech:
        tts = registry.build("tts", "", {}, workers=workers)
        audio = np.concatenate([chunk async for chunk in tts.synthesize(text)])
        voice = resample(audio, tts.sample_rate, 16000)  # rounded in float, without dither
        pcm = np.concatenate([np.zeros(16 * LEAD_MS, np.int16), voice, np.zeros(16 * TAIL_MS, np.int16)]).astype(
            np.int16
        )
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 100)
        return Speech(pcm, loud[0] / 16, loud[-1] / 16)

    return speak


@pytest.fixture
async def openai_stand_in() -> AsyncIterator[StandInOpenAIServer]:
    """A loopback HTTP server standing in for a remote OpenAI-compatible endpoint."""
    server = StandInOpenAIServer()
    await server.start()
    yield server
    await server.stop()
