"""The engine's small timing parts on a manual clock: frame clock, wake-up timer, token bucket, request log."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from parley.errors import InvalidArgument, ResourceExhausted
from parley.sessions.clock import ManualClock
from parley.sessions.frame_clock import MAX_LATE_FRAMES, FrameClock
from parley.sessions.idempotency import RequestLog
from parley.sessions.ratelimit import TokenBucket
from parley.sessions.wakeup import WakeUpTimer


@dataclass(eq=False)
class Part:
    """A ticked part that counts its frames and says when its work runs out."""

    work_frames: int = 1_000_000
    frames: int = 0
    ticks: list[int] = field(default_factory=list)
    underruns: int = 0

    def tick(self, frames: int) -> bool:
        self.frames += frames
        self.ticks.append(frames)
        return self.frames < self.work_frames

    def underrun(self, frames: int) -> None:
        self.underruns += frames


def on_a_frame_clock(parts: list[Part]) -> tuple[ManualClock, FrameClock]:
    """A frame clock on a manual clock, with `parts` added in order."""
    clock = ManualClock()
    frames = FrameClock(clock=clock)
    for part in parts:
        frames.add(part)
    return clock, frames


def ticked_after(seconds: float, clock: ManualClock, frames: FrameClock, parts: list[Part]) -> list[int]:
    """Advance the clock, run what is due; the indices of the parts that were ticked."""
    clock.advance(seconds)
    before = [p.frames for p in parts]
    frames.run_due()
    return [i for i, (p, b) in enumerate(zip(parts, before, strict=True)) if p.frames > b]


def test_the_frame_clock_ticks_each_part_once_per_period_on_absolute_deadlines() -> None:
    clock = ManualClock()
    frames = FrameClock(clock=clock)
    a, b = Part(), Part()
    frames.add(a)
    frames.add(b)
    for _ in range(50):  # a second, in uneven steps that never add up to a drift
        clock.advance(0.0195)
        frames.run_due()
        clock.advance(0.0005)
        frames.run_due()
    assert a.frames == b.frames == 50 and set(a.ticks) == {1}


def test_the_frame_clock_spreads_its_parts_over_the_period_so_each_burst_is_a_quarter() -> None:
    parts = [Part() for _ in range(8)]
    clock, frames = on_a_frame_clock(parts)
    bursts = [ticked_after(0.005, clock, frames, parts) for _ in range(40)]  # 200 ms in 5 ms steps
    assert all(len(burst) == 2 for burst in bursts)  # every 5 ms a quarter of the parts, never all of them
    assert [p.frames for p in parts] == [10] * 8  # each still once per 20 ms period
    for i in range(8):  # and always at the same offset within the period
        steps = [n for n, burst in enumerate(bursts) if i in burst]
        assert {b - a for a, b in zip(steps, steps[1:], strict=False)} == {4}


def test_a_late_loop_catches_up_every_phase_with_the_frames_it_missed() -> None:
    parts = [Part() for _ in range(4)]
    clock, frames = on_a_frame_clock(parts)
    clock.advance(0.02 * 3 + 0.010)  # three periods and half the fourth
    frames.run_due()
    assert sorted(p.ticks[0] for p in parts) == [3, 3, 4, 4]  # the phases that came round again: one more
    clock.advance(0.010)  # the fourth period's other half: the other two phases
    frames.run_due()
    assert [p.frames for p in parts] == [4] * 4


def test_a_part_joins_the_smallest_phase() -> None:
    parts = [Part() for _ in range(4)]
    clock, frames = on_a_frame_clock(parts)
    frames.remove(parts[2])
    parts[2] = Part()
    frames.add(parts[2])
    for _ in range(8):  # two periods in 5 ms steps
        assert len(ticked_after(0.005, clock, frames, parts)) == 1  # alone in the phase it took
    assert [p.frames for p in parts] == [2] * 4


def test_a_late_loop_catches_up_then_gives_up_and_restarts() -> None:
    clock = ManualClock()
    frames = FrameClock(clock=clock)
    part = Part()
    frames.add(part)
    clock.advance(0.02 * 3)  # three periods late: all three frames, at once
    frames.run_due()
    assert part.ticks == [3] and part.underruns == 0
    clock.advance(0.02 * (MAX_LATE_FRAMES + 3))  # too late to catch up: the frames are given up
    frames.run_due()
    assert part.underruns == MAX_LATE_FRAMES + 2 and part.ticks == [3, 1]
    clock.advance(0.02)
    frames.run_due()
    assert part.ticks == [3, 1, 1]  # back on a fresh schedule


def test_a_part_with_no_more_work_leaves_the_clock_and_costs_nothing() -> None:
    clock = ManualClock()
    frames = FrameClock(clock=clock)
    short, long = Part(work_frames=3), Part()
    frames.add(short)
    frames.add(long)
    for _ in range(10):
        clock.advance(0.02)
        frames.run_due()
    assert short.frames == 3 and long.frames == 10
    assert short not in frames and len(frames) == 1


def test_the_wake_up_timer_fires_once_after_both_sides_were_idle_long_enough() -> None:
    clock = ManualClock()
    fired: list[float] = []
    timer = WakeUpTimer(5.0, fired.append, clock)
    timer.idle_changed(True)
    clock.advance(4.0)
    timer.idle_changed(False)  # activity resets it
    timer.idle_changed(True)
    clock.advance(4.9)
    assert fired == []
    clock.advance(0.2)
    assert fired == [5.0]
    clock.advance(20.0)
    assert fired == [5.0]  # once; armed again only by the next change into idle
    timer.idle_changed(False)
    timer.idle_changed(True)
    clock.advance(5.1)
    assert fired == [5.0, 5.0]


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(10.0, 5, clock=clock)
    for _ in range(5):
        bucket.take()
    with pytest.raises(ResourceExhausted) as refused:
        bucket.take()
    assert refused.value.limit == "max_requests_per_second"
    clock.advance(0.1)  # one token back
    bucket.take()
    with pytest.raises(ResourceExhausted):
        bucket.take()
    clock.advance(10.0)  # refills to the burst, no further
    for _ in range(5):
        bucket.take()
    with pytest.raises(ResourceExhausted):
        bucket.take()


async def test_the_request_log_acts_once_per_id_and_refuses_a_reused_id() -> None:
    log = RequestLog(limit=2)
    calls: list[str] = []

    async def act(name: str) -> str:
        calls.append(name)
        await asyncio.sleep(0)
        return name

    first, again = await asyncio.gather(log.run("a", lambda: act("one"), "f1"), log.run("a", lambda: act("x"), "f1"))
    assert first == again == "one" and calls == ["one"]  # the concurrent retry waited for the first
    with pytest.raises(InvalidArgument) as reused:
        await log.run("a", lambda: act("two"), "f2")
    assert reused.value.field == "request_id"
    await log.run("b", lambda: act("b"), None)
    await log.run("c", lambda: act("c"), None)  # the limit: "a" is forgotten
    assert await log.run("a", lambda: act("three"), "f2") == "three"


async def test_a_failed_request_is_forgotten_and_acts_again() -> None:
    log = RequestLog()
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("boom")
        return "ok"

    with pytest.raises(RuntimeError):
        await log.run("a", flaky)
    assert await log.run("a", flaky) == "ok" and attempts == 2
