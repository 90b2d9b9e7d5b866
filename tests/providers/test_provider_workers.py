"""The provider pool: its threads yield the CPU to the event loop, and urgent work starts first."""

from __future__ import annotations

import asyncio
import os
import threading
from contextlib import nullcontext

import pytest

from parley.providers.workers import Workers, urgent


def own_priority() -> tuple[int, int]:
    """The calling thread's nice value and scheduling policy."""
    thread = threading.get_native_id()
    return os.getpriority(os.PRIO_PROCESS, thread), os.sched_getscheduler(thread)


def priority_of_a_thread_started_here() -> tuple[int, int]:
    """What a model's own inference thread, started from a pool thread, runs at."""
    seen: list[tuple[int, int]] = []
    thread = threading.Thread(target=lambda: seen.append(own_priority()))
    thread.start()
    thread.join()
    return seen[0]


@pytest.mark.parametrize(("nice", "idle"), [(10, True), (10, False), (0, True), (0, False)])
async def test_pool_threads_and_the_threads_they_start_run_below_the_loop(nice: int, idle: bool) -> None:
    loop_priority = own_priority()
    assert loop_priority[1] == os.SCHED_OTHER
    workers = Workers(2, nice=nice, idle=idle)
    try:
        expected = (min(19, loop_priority[0] + nice), os.SCHED_IDLE if idle else os.SCHED_OTHER)
        assert await workers.run(own_priority) == expected
        assert await workers.run(priority_of_a_thread_started_here) == expected
        assert own_priority() == loop_priority  # the loop's own thread keeps its priority
    finally:
        workers.close()


async def occupy(workers: Workers) -> tuple[asyncio.Task, threading.Event]:
    """Take the pool's one thread with a job that holds it until the returned event is set."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        taken.set()
        release.wait()

    busy = asyncio.create_task(workers.run(hold))
    await asyncio.get_running_loop().run_in_executor(None, taken.wait)  # the job is on the thread
    return busy, release


async def start_in_order(workers: Workers, jobs: list[tuple[str, bool]], started: list[str]) -> list[asyncio.Task]:
    """Queue each (name, is urgent) job behind the busy pool, in this order."""
    tasks = []
    for name, is_urgent in jobs:
        with urgent() if is_urgent else nullcontext():
            tasks.append(asyncio.create_task(workers.run(started.append, name)))
        await asyncio.sleep(0)  # queued now, in this order
    return tasks


async def test_urgent_work_starts_before_work_that_waited_longer() -> None:
    """A session's first sentence does not wait behind the look-ahead sentences other sessions asked for first."""
    workers = Workers(1, nice=0)
    busy, release = await occupy(workers)
    started: list[str] = []
    tasks = await start_in_order(workers, [("ahead 1", False), ("first words A", True), ("ahead 2", False),
                                           ("first words B", True)], started)
    release.set()
    await asyncio.gather(busy, *tasks)
    assert started == ["first words A", "first words B", "ahead 1", "ahead 2"]
    workers.close()


async def test_a_waiting_job_cancelled_gives_up_its_place_and_close_fails_the_rest() -> None:
    workers = Workers(1, nice=0)
    busy, release = await occupy(workers)
    started: list[str] = []
    gone, kept = await start_in_order(workers, [("gone", True), ("kept", False)], started)
    gone.cancel()
    release.set()
    await asyncio.gather(busy, kept)
    assert gone.cancelled() and started == ["kept"]
    assert await workers.run(lambda: "the thread is free again") == "the thread is free again"

    busy, release = await occupy(workers)
    [stranded] = await start_in_order(workers, [("stranded", False)], started)
    workers.close()
    with pytest.raises(RuntimeError, match="closed"):
        await stranded
    release.set()
    await busy
