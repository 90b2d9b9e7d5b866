"""Cancelling tasks without waiting forever for them to end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("parley.tasks")

TASK_END_SECONDS = 2.0  # how long to wait for a cancelled task to end


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], *, timeout: float = TASK_END_SECONDS) -> None:
    """Cancel `tasks` and wait for them to end, but not forever; what they raised is dropped.

    A task that swallows its cancellation is a bug, but it must not keep a
    session from closing, a call from ending, nor the server from stopping:
    it is logged by name and left behind.
    """
    tasks = list(tasks)
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        _, stuck = await asyncio.wait(pending, timeout=timeout)
        for task in stuck:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            log.error("a task did not end when cancelled", extra={"task": name})
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the caller chose to drop it
