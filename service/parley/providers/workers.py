"""A bounded thread pool for CPU-heavy provider work, owned by the server.

Model inference (speech recognition, synthesis, token generation) releases the
GIL inside native code, so threads run it in parallel with the event loop.
The pool is bounded: at most `threads` jobs run at once, the rest wait in
order, except that work started inside `urgent()` (what a caller is waiting
for right now: the first audio of an utterance) goes ahead of every waiting
job that is not urgent. Without that, 50 Says at once on espeak (one engine,
one lock) had the last session's first sentence wait behind the other
sessions' look-ahead sentences. Pass one Workers to every provider built by
a server and use it from the server's event loop (the waiting jobs are that
loop's futures); close it on shutdown.

The pool's threads run at a lower scheduling priority (`nice`, added to the
process's) than the event loop: when models want more CPU than the machine
has, the loop still moves every call's audio on time and the models' answers
come later, instead of every caller hearing gaps. On Linux they also run
under the SCHED_IDLE policy (`idle`): a lower nice value only shrinks a
thread's share, and the kernel may still let it finish its time slice
before a waking loop gets the core; a SCHED_IDLE thread gives the core up
the moment any ordinary thread wants it. With 75 callers on the default
providers (Whisper busy on both cores) frames were late by 9.2-11.1 ms at
p99 under SCHED_IDLE against 13.1-31.2 ms with nice alone (three
alternating rounds). Threads and processes a model starts from a pool
thread (its own inference threads, a model process) inherit both.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


DEFAULT_NICE = 10
URGENT, NORMAL = 0, 1  # a waiting job's rank: lower starts first

log = logging.getLogger("parley.providers")
_urgent: ContextVar[bool] = ContextVar("parley_urgent_work", default=False)


@contextmanager
def urgent() -> Iterator[None]:
    """Pool work started in this block, and in tasks created in it, goes ahead of the jobs waiting for a thread."""
    token = _urgent.set(True)
    try:
        yield
    finally:
        _urgent.reset(token)


def default_thread_count() -> int:
    return max(2, min(8, (os.cpu_count() or 2) * 2))


def lower_thread_priority(nice: int, idle: bool) -> None:
    """Lower the calling thread's scheduling priority by `nice`, and with `idle` put it under SCHED_IDLE.

    Only Linux gives each thread its own nice value and policy (set through
    the thread's id); elsewhere that id could name another process, so the
    thread runs as is.
    """
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        if nice > 0:
            os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
        if idle:
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
    except OSError as exc:  # e.g. a sandbox that forbids it: run as is
        log.warning("provider threads keep the loop's priority", extra={"error": str(exc)})


class Workers:
    def __init__(self, threads: int | None = None, nice: int = DEFAULT_NICE, idle: bool = True) -> None:
        self.threads = threads or default_thread_count()
        self.nice = nice
        self.idle = idle
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="parley-provider",
                                        initializer=lower_thread_priority, initargs=(nice, idle))
        self._running = 0  # jobs handed to the pool (at most `threads`)
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # heap: (rank, arrival, gate)
        self._arrivals = itertools.count()
        self._closed = False

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run fn(*args, **kwargs) on the pool and await its result."""
        if self._closed:
            raise RuntimeError("Workers is closed")
        loop = asyncio.get_running_loop()
        if self._running < self.threads:
            self._running += 1
        else:
            gate: asyncio.Future[None] = loop.create_future()
            heapq.heappush(self._waiting, (URGENT if _urgent.get() else NORMAL, next(self._arrivals), gate))
            try:
                await gate  # a finishing job hands its thread over by setting it
            except asyncio.CancelledError:
                if gate.done() and not gate.cancelled():
                    self._release()  # the thread was handed over just now: pass it on
                raise
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        finally:
            self._release()

    def _release(self) -> None:
        """A job is done with its thread: the first waiting job (urgent before the rest) takes it over."""
        while self._waiting:
            gate = heapq.heappop(self._waiting)[2]
            if not gate.done():  # a waiter cancelled meanwhile is skipped
                gate.set_result(None)
                return
        self._running -= 1

    def close(self) -> None:
        """Stop taking work; running jobs finish, waiting ones fail with RuntimeError."""
        self._closed = True
        waiting, self._waiting = self._waiting, []
        for _rank, _arrival, gate in waiting:
            if not gate.done():
                gate.set_exception(RuntimeError("Workers is closed"))
        self._pool.shutdown(wait=False, cancel_futures=True)
