"""Time for the engine's parts: what time it is, and timers.

Every part that waits or reads time takes a `Clock` instead of calling
`time.monotonic()` or `loop.call_later()` itself, so the same code runs on
the event loop's clock in the server and on a `ManualClock` in unit tests,
where a test moves time forward by hand and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` once, `delay` seconds from now (at once if delay <= 0), unless cancelled."""
        ...


class LoopClock:
    """The running event loop's monotonic clock and timers."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)


LOOP_CLOCK = LoopClock()
"""Stateless: the one real clock every session may share."""


class _ManualTimer:
    def __init__(self, clock: ManualClock, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to (for tests of timing logic)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer(self, self._now + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.due, next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, running every timer that falls due, in order, at its own time."""
        end = self._now + seconds
        while self._timers and self._timers[0][0] <= end:
            due, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, due)
            timer.callback()
        self._now = end

    @property
    def pending(self) -> int:
        """Timers still to run."""
        return sum(1 for _, _, t in self._timers if not t.cancelled)
