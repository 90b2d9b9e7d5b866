"""Engine failures surface as ProviderError, and the provider stays usable afterwards."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from parley.chat import ChatMessage, Role
from parley.providers import registry
from parley.providers.base import ProviderError, TextDelta, Usage
from parley.providers.llm import local as local_module
from parley.providers.tts import espeak_engine
from parley.providers.workers import Workers


async def test_tts_engine_exception_is_a_failed_error(workers: Workers, monkeypatch: pytest.MonkeyPatch) -> None:
    tts = registry.build("tts", "espeak", {}, workers=workers)

    def broken(*_: object) -> np.ndarray:
        raise RuntimeError("synthesizer crashed")

    monkeypatch.setattr(espeak_engine.engine(), "synthesize", broken)
    with pytest.raises(ProviderError) as err:
        [c async for c in tts.synthesize("hello there")]
    assert (err.value.kind, err.value.stage, err.value.provider) == ("failed", "tts", "espeak")
    assert "synthesizer crashed" in err.value.message


async def test_a_recognizer_process_that_died_is_replaced_for_the_next_utterance(workers: Workers) -> None:
    stt = registry.build("stt", "whisper", {}, workers=workers)
    await stt.warm_up()
    first = await stt.model().model.start(workers)
    assert first != os.getpid()  # the model runs in a process of its own
    os.kill(first, signal.SIGKILL)
    stream = stt.stream()
    await stream.push(np.zeros(16000, np.int16))
    assert (await stream.finish()).is_final
    assert await stt.model().model.start(workers) not in (first, os.getpid())


async def test_local_llm_exception_is_a_failed_error_and_frees_the_model(
    workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = registry.build("llm", "local", {"seed": 3, "max_tokens": 8}, workers=workers)
    ask = [ChatMessage(Role.USER, "Hello")]

    def broken(*_: object, **__: object) -> str:
        raise RuntimeError("prompt too strange")

    monkeypatch.setattr(local_module, "render", broken)
    with pytest.raises(ProviderError) as err:
        [c async for c in llm.chat(ask, [])]
    assert (err.value.kind, err.value.stage, err.value.provider) == ("failed", "llm", "local")
    monkeypatch.undo()
    chunks = [c async for c in llm.chat(ask, [])]
    assert isinstance(chunks[-1], Usage) and all(isinstance(c, TextDelta) for c in chunks[:-1])
