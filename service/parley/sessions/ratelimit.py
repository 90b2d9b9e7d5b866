"""A token bucket: how many requests a session (or a caller) may make, on average and in a burst."""

from __future__ import annotations

from parley.errors import ResourceExhausted
from parley.sessions.clock import LOOP_CLOCK, Clock


class TokenBucket:
    """`rate` tokens per second refill a bucket of `burst`; each request takes one.

    A request finding the bucket empty is RESOURCE_EXHAUSTED naming `limit`;
    the caller may retry after about 1/rate seconds.
    """

    def __init__(self, rate: float, burst: int, limit: str = "max_requests_per_second", *,
                 holder: str = "on this session", clock: Clock = LOOP_CLOCK) -> None:
        self._rate = rate
        self._burst = float(max(1, burst))
        self._tokens = self._burst
        self._clock = clock
        self._last = clock.now()
        self._limit = limit
        self._holder = holder

    def take(self) -> None:
        if self._rate <= 0:
            return  # unlimited
        now = self._clock.now()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1:
            raise ResourceExhausted(
                self._limit, f"more than {self._rate:g} requests per second (burst {self._burst:g}) {self._holder}",
                retry_after_seconds=(1 - self._tokens) / self._rate,
            )
        self._tokens -= 1
