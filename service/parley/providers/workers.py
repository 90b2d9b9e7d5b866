"""A bounded thread pool for CPU-heavy provider work, owned by the server.

Model inference (speech recognition, synthesis, token generation) releases the
GIL inside native code, so threads run it in parallel with the event loop.
The pool is bounded: at most `threads` jobs run at once, the rest wait in
order. Pass one Workers to every provider built by a server; close it on
shutdown.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def default_thread_count() -> int:
    return max(2, min(8, (os.cpu_count() or 2) * 2))


class Workers:
    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or default_thread_count()
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="parley-provider")
        self._closed = False

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run fn(*args, **kwargs) on the pool and await its result."""
        if self._closed:
            raise RuntimeError("Workers is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Stop taking work; running jobs finish, queued ones are dropped."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
