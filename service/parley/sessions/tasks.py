"""A session's background tasks: named after it, tracked, and all cancelled when it closes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from parley.cancelling import cancel_and_wait


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
