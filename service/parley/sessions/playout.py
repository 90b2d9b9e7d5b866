"""The session clock: one mixed frame every frame period, on absolute deadlines.

Deadlines are `start + n * period` on the monotonic clock, so timing errors
never accumulate. With nothing to play and no stream attached the clock
sleeps, and a session costs nothing; it restarts on the next work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

MAX_LATE_FRAMES = 5  # later than this, the clock restarts instead of bursting to catch up


class Pacer:
    """Calls `tick()` every `frame_ms`; `tick` mixes a frame and hands it on."""

    def __init__(
        self, frame_ms: int, tick: Callable[[int], None], has_work: Callable[[], bool],
    ) -> None:
        self.period = frame_ms / 1000
        self._tick = tick
        self._has_work = has_work
        self._wakeup = asyncio.Event()
        self.lead_seconds = 0.0
        self.frames = 0
        self.underruns = 0
        self._task = asyncio.create_task(self._run(), name="pacer")

    def wake(self) -> None:
        self._wakeup.set()

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._has_work():
                self._wakeup.clear()
                await self._wakeup.wait()
            start = loop.time()
            n = 0
            while self._has_work():
                deadline = start + n * self.period  # when the frame plays, in real time
                delay = deadline - self.lead_seconds - loop.time()  # sent up to `lead_seconds` ahead
                if delay > 0:
                    await asyncio.sleep(delay)
                late = loop.time() - deadline
                if late > self.period:
                    self.underruns += 1
                if late > MAX_LATE_FRAMES * self.period:
                    start, n = loop.time(), 0
                self._tick(self.frames)
                self.frames += 1
                n += 1
