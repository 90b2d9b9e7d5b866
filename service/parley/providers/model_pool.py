"""Several processes of one model, so that several jobs run at once.

One model process runs one job at a time, and a model's threads do not
scale over cores the way separate jobs do: Whisper tiny on 2 cores
transcribed 3.1 utterances a second in one process with two threads, and
4.1 in two such processes, with the time of a single transcription the
same. Each process holds its own copy of the model (its memory counts
once per process).

A job takes a free process, waiting on the event loop for one (never
parking a thread), and gives it back when it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from parley.providers.model_process import ModelProcess
from parley.providers.shared import PerLoop
from parley.providers.workers import Workers


class ModelPool:
    def __init__(self, load: Callable[[], Any], size: int, job_timeout: float) -> None:
        self.processes = [ModelProcess(load, job_timeout) for _ in range(size)]
        self._free = PerLoop(self._all_free)

    def _all_free(self) -> asyncio.Queue[ModelProcess]:
        free: asyncio.Queue[ModelProcess] = asyncio.Queue()
        for process in self.processes:
            free.put_nowait(process)
        return free

    def has_free(self) -> bool:
        """Whether a job would start now, without waiting."""
        return not self._free.get().empty()

    @asynccontextmanager
    async def process(self) -> AsyncIterator[ModelProcess]:
        """A free process, held for the block."""
        free = self._free.get()
        process = await free.get()
        try:
            yield process
        finally:
            free.put_nowait(process)

    async def start(self, workers: Workers) -> list[int]:
        """Start every process and load the model in each; their process ids."""
        return [await process.start(workers) for process in self.processes]

    def close(self) -> None:
        for process in self.processes:
            process.close()
