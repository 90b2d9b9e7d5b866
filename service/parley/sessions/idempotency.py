"""Bounded memory of request ids, so a retried mutating call acts once (and a reused id is refused)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from parley.errors import InvalidArgument


class RequestLog:
    """Remembers the outcome of the last `limit` request ids (oldest forgotten first).

    A retry that arrives while the first call is still running waits for it
    and gets the same result (or the same error). A call that failed did not
    act, so it is forgotten and a later retry acts anew. A request id that
    comes back with another request (its `fingerprint` differs) is refused
    with InvalidArgument naming `request_id`, as AIP-155 asks, instead of
    answering with the first request's result.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._results: OrderedDict[Hashable, tuple[Hashable, asyncio.Future[Any]]] = OrderedDict()

    async def run(self, key: Hashable | None, action: Callable[[], Awaitable[Any]],
                  fingerprint: Hashable = None) -> Any:
        """`fingerprint` identifies the request (e.g. a hash of it); None matches only None."""
        if key is None:
            return await action()
        existing = self._results.get(key)
        if existing is not None:
            first, result = existing
            if first != fingerprint:
                raise InvalidArgument("request_id", "was used before for a different request; a new request "
                                      "needs a new request_id", reason="REQUEST_ID_REUSED")
            return await asyncio.shield(result)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._results[key] = (fingerprint, future)
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
