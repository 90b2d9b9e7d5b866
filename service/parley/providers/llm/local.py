"""The default LLM: a small GGUF model run offline through llama.cpp.

The model is Gemma 3 270M (Q4_K_M, Gemma licence terms), shipped on PyPI
and joined into one file on first use (parley.providers.models). It is a
base model, not a chat model: it is prompted with a plain "User:/Assistant:"
dialogue, answers shortly and often vaguely, and is not offered tools. It is
there so a fresh install talks with no network at all; for real answers and
tool calls use the "openai" provider.

The model runs in a process of its own (`model_process.py`), at the
provider threads' lower priority: its token loop never holds the GIL the
calls' audio needs, and a crash in llama.cpp ends that process, not the
server (the next answer starts a new one). One generation runs at a time
per loaded model (llama.cpp keeps one KV cache); other sessions wait on the
event loop. Tokens stream back as they come; closing the stream stops
generation within one token.
"""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

from parley.chat import ChatMessage, ToolSpec
from parley.providers.base import LLM, LLMChunk, ProviderError, TextDelta, Usage
from parley.providers.llm.prompt import STOP, first_line, render
from parley.providers.model_process import ModelProcess
from parley.providers.models import gemma_path
from parley.providers.options import Opt
from parley.providers.shared import MODELS, SharedModel
from parley.providers.workers import Workers

OPTIONS = {
    "max_tokens": Opt(int, 96, min=1, max=1024),
    "temperature": Opt(float, 0.7, min=0.0, max=2.0),
    "top_p": Opt(float, 0.95, min=0.0, max=1.0),
    "seed": Opt(int, -1, min=-1, help="-1 picks a random seed per answer"),
    "threads": Opt(int, 2, min=1, max=16, help="CPU threads of one generation"),
}

CONTEXT_TOKENS = 2048
MODEL_NAME = "gemma-3-270m-q4_k_m"


JOB_TIMEOUT_S = 60.0  # to each token, the model's load and the prompt's evaluation included


def _load(threads: int) -> Any:
    from llama_cpp import Llama

    return Llama(model_path=str(gemma_path()), n_ctx=CONTEXT_TOKENS, n_threads=threads, verbose=False)


class LocalLLM(LLM):
    name = "local"
    model = MODEL_NAME

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self._options = options
        self._workers = workers

    def shared_model(self) -> SharedModel[ModelProcess]:
        threads = self._options["threads"]
        return MODELS.get(("llama", MODEL_NAME, threads),
                          lambda: ModelProcess(functools.partial(_load, threads), job_timeout=JOB_TIMEOUT_S))

    async def warm_up(self) -> None:
        """Start the model's process and load the model there."""
        try:
            await self.shared_model().model.start(self._workers)
        except Exception as exc:
            raise ProviderError("failed", "llm", self.name, f"cannot load model: {exc}") from exc

    async def chat(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> AsyncIterator[LLMChunk]:
        shared = self.shared_model()
        lock = shared.lock()
        await lock.acquire()
        try:
            async with aclosing(shared.model.stream(self._workers, _generate, messages, self._options,
                                                    on_done=lock.release)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError("failed", "llm", self.name, f"{type(exc).__name__}: {exc}") from exc


def _generate(llama: Any, messages: list[ChatMessage], options: dict[str, Any]) -> Iterator[LLMChunk]:
    """The answer's text pieces, then its token counts (runs in the model's process)."""
    output_tokens = 0

    def count_tokens(text: str) -> int:
        return len(llama.tokenize(text.encode(), add_bos=True))

    def pieces(prompt: str) -> Iterator[str]:
        nonlocal output_tokens
        for chunk in llama.create_completion(
            prompt,
            max_tokens=options["max_tokens"],
            temperature=options["temperature"],
            top_p=options["top_p"],
            seed=random.randrange(2**31) if options["seed"] < 0 else options["seed"],
            stop=STOP,
            stream=True,
        ):
            output_tokens += 1
            yield chunk["choices"][0]["text"]

    prompt = render(messages, count_tokens, CONTEXT_TOKENS - options["max_tokens"])
    for text in first_line(pieces(prompt)):
        yield TextDelta(text)
    yield Usage(count_tokens(prompt), output_tokens)
