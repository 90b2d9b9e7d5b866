"""The default LLM: a small GGUF model run offline through llama.cpp.

The model is Gemma 3 270M (Q4_K_M, Gemma licence terms), shipped on PyPI
and joined into one file on first use (parley.providers.models). It is a
base model, not a chat model: it is prompted with a plain "User:/Assistant:"
dialogue, answers shortly and often vaguely, and is not offered tools. It is
there so a fresh install talks with no network at all; for real answers and
tool calls use the "openai" provider.

One generation runs at a time per loaded model (llama.cpp keeps one KV
cache); other sessions wait on the event loop. Tokens stream from a worker
thread; closing the stream stops generation within one token.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

from parley.chat import ChatMessage, ToolSpec
from parley.providers.base import LLM, LLMChunk, ProviderError, TextDelta, Usage
from parley.providers.llm.prompt import STOP, first_line, render
from parley.providers.llm.threaded import stream_from_thread
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


def _load(threads: int) -> Any:
    from llama_cpp import Llama

    return Llama(model_path=str(gemma_path()), n_ctx=CONTEXT_TOKENS, n_threads=threads, verbose=False)


class LocalLLM(LLM):
    name = "local"
    model = MODEL_NAME

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self._options = options
        self._workers = workers

    async def shared_model(self) -> SharedModel[Any]:
        threads = self._options["threads"]
        try:
            return await self._workers.run(MODELS.get, ("llama", MODEL_NAME, threads), lambda: _load(threads))
        except Exception as exc:
            raise ProviderError("failed", "llm", self.name, f"cannot load model: {exc}") from exc

    async def warm_up(self) -> None:
        await self.shared_model()

    async def chat(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> AsyncIterator[LLMChunk]:
        shared = await self.shared_model()
        lock = shared.lock()
        await lock.acquire()
        llama = shared.model
        options = self._options
        budget = CONTEXT_TOKENS - options["max_tokens"]
        counts = {"input": 0, "output": 0}

        def count_tokens(text: str) -> int:
            return len(llama.tokenize(text.encode(), add_bos=True))

        def pieces(prompt: str) -> Iterator[str]:
            for chunk in llama.create_completion(
                prompt,
                max_tokens=options["max_tokens"],
                temperature=options["temperature"],
                top_p=options["top_p"],
                seed=random.randrange(2**31) if options["seed"] < 0 else options["seed"],
                stop=STOP,
                stream=True,
            ):
                counts["output"] += 1
                yield chunk["choices"][0]["text"]

        def generate() -> Iterator[str]:
            prompt = render(messages, count_tokens, budget)
            counts["input"] = count_tokens(prompt)
            yield from first_line(pieces(prompt))

        try:
            async with aclosing(stream_from_thread(self._workers, generate, lock.release)) as tokens:
                async for text in tokens:
                    yield TextDelta(text)
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError("failed", "llm", self.name, f"{type(exc).__name__}: {exc}") from exc
        yield Usage(counts["input"], counts["output"])
