"""A bounded thread pool for CPU-heavy provider work, owned by the server.

Model inference (speech recognition, synthesis, token generation) releases the
GIL inside native code, so threads run it in parallel with the event loop.
The pool is bounded: at most `threads` jobs run at once, the rest wait in
order. Pass one Workers to every provider built by a server; close it on
shutdown.

The pool's threads run at a lower scheduling priority (`nice`, added to the
process's) than the event loop: when models want more CPU than the machine
has, the loop still moves every call's audio on time and the models' answers
come later, instead of every caller hearing gaps. Threads a model starts from
a pool thread (its own inference threads) inherit that priority.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


DEFAULT_NICE = 10

log = logging.getLogger("parley.providers")


def default_thread_count() -> int:
    return max(2, min(8, (os.cpu_count() or 2) * 2))


def lower_thread_priority(nice: int) -> None:
    """Lower the calling thread's scheduling priority by `nice`.

    Only Linux gives each thread its own nice value (set through the
    thread's id); elsewhere that id could name another process, so the
    thread runs as is.
    """
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
    except OSError as exc:  # e.g. a sandbox that forbids it: run as is
        log.warning("provider threads keep the loop's priority", extra={"error": str(exc)})


class Workers:
    def __init__(self, threads: int | None = None, nice: int = DEFAULT_NICE) -> None:
        self.threads = threads or default_thread_count()
        self.nice = nice
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="parley-provider",
                                        initializer=lower_thread_priority, initargs=(nice,))
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
