"""The frame clock: one task per process ticks every session that has audio to move.

Every 20 ms frame period the clock calls `tick()` on each registered part
(a session's audio port), on absolute deadlines `start + n x period`, so
timing errors never accumulate. One sleeping task serves a thousand
sessions; a session with nothing to play and no stream attached is not
registered and costs nothing. Parts register themselves when work appears
and are dropped after a tick that reports no more work.

A loop running late catches up by ticking the missed frames at once, up to
`MAX_LATE_FRAMES`; later than that, the missed frames are given up (each
part is told, as an underrun) and the schedule restarts from now.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from parley.cancelling import cancel_and_wait
from parley.sessions.clock import LOOP_CLOCK, Clock

FRAME_MS = 20
MAX_LATE_FRAMES = 5


class Ticking(Protocol):
    def tick(self, frames: int) -> bool:
        """Produce `frames` frames (1, or more to catch up); False when there is no more work."""
        ...

    def underrun(self, frames: int) -> None:
        """`frames` frame periods passed with no frame produced (the loop was too late)."""
        ...


class FrameClock:
    """Owned by the server (or an embedder's registry); shared by its sessions."""

    def __init__(self, frame_ms: int = FRAME_MS, clock: Clock = LOOP_CLOCK) -> None:
        self.period = frame_ms / 1000
        self._clock = clock
        self._parts: dict[Ticking, None] = {}  # insertion-ordered set
        self._start = 0.0
        self._n = 0
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self.ticks = 0

    def add(self, part: Ticking) -> None:
        """Tick `part` from the next frame period on, until it reports no more work."""
        if part in self._parts:
            return
        self._parts[part] = None
        if len(self._parts) == 1:
            self._start, self._n = self._clock.now(), 1
        if self._wakeup is not None:
            self._wakeup.set()

    def remove(self, part: Ticking) -> None:
        self._parts.pop(part, None)

    def __contains__(self, part: Ticking) -> bool:
        return part in self._parts

    def __len__(self) -> int:
        return len(self._parts)

    def next_deadline(self) -> float:
        return self._start + self._n * self.period

    def run_due(self) -> None:
        """Tick every frame that is due by now (the loop task calls this; tests with a manual clock too)."""
        now = self._clock.now()
        due = int((now - self._start) / self.period + 1e-6) - self._n + 1  # 1e-6: float error at the boundary
        if due <= 0:
            return
        if due > MAX_LATE_FRAMES:
            for part in list(self._parts):
                part.underrun(due - 1)
            self._start, self._n, due = now, 0, 1
        self._n += due
        self.ticks += due
        for part in list(self._parts):
            if not part.tick(due):
                self._parts.pop(part, None)

    def start(self) -> None:
        """Run the ticking task on the current event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="frame-clock")

    async def aclose(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            while not self._parts:
                self._wakeup.clear()
                await self._wakeup.wait()
            delay = self.next_deadline() - self._clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            self.run_due()
