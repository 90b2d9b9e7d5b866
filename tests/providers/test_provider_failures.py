"""Engine failures surface as ProviderError, and the provider stays usable afterwards."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from parley.chat import ChatMessage, Role
from parley.providers import registry
from parley.providers.base import ProviderError, TextDelta, Usage
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
    [first] = await stt.model().model.start(workers)
    assert first != os.getpid()  # the model runs in a process of its own
    os.kill(first, signal.SIGKILL)
    stream = stt.stream()
    await stream.push(np.zeros(16000, np.int16))
    assert (await stream.finish()).is_final
    [again] = await stt.model().model.start(workers)
    assert again not in (first, os.getpid())


async def test_a_language_model_process_that_dies_mid_answer_fails_it_and_the_next_answer_comes(
    workers: Workers,
) -> None:
    llm = registry.build("llm", "local", {"seed": 3, "max_tokens": 200, "temperature": 1.5}, workers=workers)
    ask = [ChatMessage(Role.USER, "Tell me a long story about the sea.")]
    await llm.warm_up()
    first = await llm.shared_model().model.start(workers)
    assert first != os.getpid()  # the model runs in a process of its own
    answer = llm.chat(ask, [])
    assert isinstance(await anext(answer), TextDelta)
    os.kill(first, signal.SIGKILL)  # a crash in llama.cpp while it answers (once: the dead process is reaped)
    with pytest.raises(ProviderError) as err:
        async for chunk in answer:  # what it sent before it died, then the failure
            assert isinstance(chunk, TextDelta)
    assert (err.value.kind, err.value.stage, err.value.provider) == ("failed", "llm", "local")
    assert "process ended" in err.value.message
    chunks = [c async for c in llm.chat(ask, [])]
    assert isinstance(chunks[-1], Usage) and all(isinstance(c, TextDelta) for c in chunks[:-1])
    assert await llm.shared_model().model.start(workers) not in (first, os.getpid())
