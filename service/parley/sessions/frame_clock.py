"""The frame clock: one task per process ticks every session that has audio to move.

Every 20 ms frame period the clock calls `tick()` on each registered part
(a session's audio port), on absolute deadlines, so timing errors never
accumulate. One sleeping task serves a thousand sessions; a session with
nothing to play and no stream attached is not registered and costs nothing.
Parts register themselves when work appears and are dropped after a tick
that reports no more work.

The parts are spread over `PHASES` groups, each ticked at its own offset
within the period (0, 5, 10 and 15 ms), and a new part joins the smallest
group. Ticking every session at the same instant would send all their
frames in one burst, and the last session's frame would wait for all the
others' mixing and sending; spread, a burst is a quarter as long.

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
PHASES = 4
MAX_LATE_FRAMES = 5


class Ticking(Protocol):
    def tick(self, frames: int) -> bool:
        """Produce `frames` frames (1, or more to catch up); False when there is no more work."""
        ...

    def underrun(self, frames: int) -> None:
        """`frames` frame periods passed with no frame produced (the loop was too late)."""
        ...


class FrameClock:
    """Owned by the server (or an embedder's registry); shared by its sessions.

    Its schedule counts steps of a period / `phases`: step k ticks group
    k mod `phases`, so each part is ticked once per period.
    """

    def __init__(self, frame_ms: int = FRAME_MS, clock: Clock = LOOP_CLOCK, phases: int = PHASES) -> None:
        self.period = frame_ms / 1000
        self._phases = phases
        self._step = self.period / phases
        self._clock = clock
        self._groups: list[dict[Ticking, None]] = [{} for _ in range(phases)]  # insertion-ordered sets
        self._group_of: dict[Ticking, int] = {}
        self._start = 0.0
        self._n = 0  # the next step due
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None

    def add(self, part: Ticking) -> None:
        """Tick `part` from its group's next step on, until it reports no more work."""
        if part in self._group_of:
            return
        group = min(range(self._phases), key=lambda g: len(self._groups[g]))
        self._groups[group][part] = None
        self._group_of[part] = group
        if len(self._group_of) == 1:
            self._start, self._n = self._clock.now(), 1
        if self._wakeup is not None:
            self._wakeup.set()

    def remove(self, part: Ticking) -> None:
        group = self._group_of.pop(part, None)
        if group is not None:
            del self._groups[group][part]

    def __contains__(self, part: Ticking) -> bool:
        return part in self._group_of

    def __len__(self) -> int:
        return len(self._group_of)

    def next_deadline(self) -> float:
        return self._start + self._n * self._step

    def run_due(self) -> None:
        """Tick every step that is due by now (the loop task calls this; tests with a manual clock too)."""
        now = self._clock.now()
        due = int((now - self._start) / self._step + 1e-6) - self._n + 1  # 1e-6: float error at the boundary
        if due <= 0:
            return
        if due > MAX_LATE_FRAMES * self._phases:
            for part, group in list(self._group_of.items()):
                part.underrun(self._frames_in(group, self._n, due) - (group == 0))  # group 0 ticks now
            self._start, self._n, due = now, 0, 1
        first = self._n
        self._n += due
        for step in range(first, first + min(due, self._phases)):
            group = step % self._phases
            frames = self._frames_in(group, first, due)
            for part in list(self._groups[group]):
                if not part.tick(frames):
                    self.remove(part)

    def _frames_in(self, group: int, first: int, steps: int) -> int:
        """How many of the steps first .. first + steps - 1 tick `group`."""
        offset = (group - first) % self._phases
        return 0 if offset >= steps else (steps - 1 - offset) // self._phases + 1

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
            while not self._group_of:
                self._wakeup.clear()
                await self._wakeup.wait()
            delay = self.next_deadline() - self._clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            self.run_due()
