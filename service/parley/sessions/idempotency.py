"""Bounded memory of request ids, so a retried mutating call acts once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class RequestLog:
    """Remembers the outcome of the last `limit` request ids (oldest forgotten first).

    A retry that arrives while the first call is still running waits for it
    and gets the same result (or the same error). A call that failed did not
    act, so it is forgotten and a later retry acts anew.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._results: OrderedDict[Hashable, asyncio.Future[Any]] = OrderedDict()

    async def run(self, key: Hashable | None, action: Callable[[], Awaitable[Any]]) -> Any:
        if key is None:
            return await action()
        existing = self._results.get(key)
        if existing is not None:
            return await asyncio.shield(existing)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._results[key] = future
        while len(self._results) > self._limit:
            self._results.popitem(last=False)
        try:
            result = await action()
        except BaseException as exc:
            self._results.pop(key, None)
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark retrieved: a retry may never come
            raise
        future.set_result(result)
        return result

    def __len__(self) -> int:
        return len(self._results)
