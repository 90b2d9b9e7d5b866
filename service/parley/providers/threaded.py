"""Streaming a blocking token generator from a worker thread to the event loop.

The generator runs on the worker pool and hands each item to the loop through
an asyncio.Queue. The queue is bounded by the generator itself (a model
stops at max_tokens), and the worker checks a stop flag before every item, so
closing the consumer ends the generation within one token without any pool
thread waiting for a reader.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar, cast

from parley.providers.workers import Workers

T = TypeVar("T")

_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def stream_from_thread(
    workers: Workers, produce: Callable[[], Iterator[T]], on_done: Callable[[], None]
) -> AsyncGenerator[T, None]:
    """Yield what produce() yields; on_done() runs on the loop once the worker has stopped."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone: nobody is listening any more
            stop.set()

    def work() -> None:
        try:
            iterator = produce()
            try:
                for item in iterator:
                    if stop.is_set():
                        break
                    put(item)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failed(exc))
        finally:
            put(_END)

    worker = asyncio.ensure_future(workers.run(work))
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield cast(T, item)
    finally:
        stop.set()
        if worker.done():
            on_done()
        else:
            worker.add_done_callback(lambda _: on_done())
