"""A session's background tasks: named after it, tracked, and all cancelled when it closes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

log = logging.getLogger("parley.tasks")

TASK_END_SECONDS = 2.0  # how long a closing session waits for a cancelled task to end


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, timeout: float = TASK_END_SECONDS) -> None:
    """Cancel `tasks` and wait for them to end, but not forever.

    A task that swallows its cancellation is a bug, but it must not keep a
    session from closing (nor the server from stopping): it is logged by
    name and left behind.
    """
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, stuck = await asyncio.wait(pending, timeout=timeout)
    for task in stuck:
        log.error("a task did not end when cancelled", extra={"task": task.get_name()})


class BackgroundTasks:
    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(f"{self._owner}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self) -> None:
        await cancel_and_wait(list(self._tasks))
