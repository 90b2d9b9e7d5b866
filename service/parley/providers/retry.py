"""One retry policy for remote providers: bounded, jittered, and polite to Retry-After.

A remote provider wraps each attempt of a streamed call in
`stream_with_retries`. An attempt that fails with `Retryable` before it
yielded anything is tried again after a delay: the server's Retry-After
when it sent one (a wait longer than `max_wait_s` is not worth the caller's
time and fails at once), else exponential backoff with full jitter
(uniform in [0, base × 2^attempt], capped), so many sessions hitting one
overloaded endpoint do not come back in lockstep. Nothing is retried once
output has been yielded: half an answer is never restarted.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
"""HTTP statuses worth another attempt: timeouts, conflicts, rate limits, server trouble."""


class Retryable(Exception):
    """An attempt failed in a way another attempt may not; `error` is raised if none is left."""

    def __init__(self, error: Exception, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    backoff_s: float = 0.5
    """The first backoff's ceiling; each further attempt doubles it."""
    max_wait_s: float = 10.0
    """The longest single wait, Retry-After included."""

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`; None when waiting would exceed `max_wait_s`."""
        if retry_after is not None:
            return retry_after if retry_after <= self.max_wait_s else None
        ceiling = min(self.max_wait_s, self.backoff_s * 2**attempt)
        return (rng or random).uniform(0.0, ceiling)


async def stream_with_retries(
    policy: RetryPolicy, attempt: Callable[[], AsyncGenerator[T, None]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncGenerator[T, None]:
    """The items of the first attempt that does not fail with Retryable before its first item."""
    for number in range(policy.max_retries + 1):
        started = False
        try:
            async with aclosing(attempt()) as items:
                async for item in items:
                    started = True
                    yield item
            return
        except Retryable as failure:
            wait = None if started or number == policy.max_retries else policy.delay(number, failure.retry_after)
            if wait is None:
                raise failure.error from None
        await sleep(wait)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The server's requested wait: `retry-after-ms`, or `retry-after` in seconds or as an HTTP date."""
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        if "retry-after-ms" in lowered:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        value = lowered.get("retry-after")
        if value is None:
            return None
        if value.strip().replace(".", "", 1).isdigit():
            return max(0.0, float(value))
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (ValueError, TypeError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
