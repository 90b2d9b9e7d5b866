"""The provider pool's threads yield the CPU to the event loop that moves the calls' audio."""

from __future__ import annotations

import os
import threading

import pytest

from parley.providers.workers import Workers


def own_priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def priority_of_a_thread_started_here() -> int:
    """What a model's own inference thread, started from a pool thread, runs at."""
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(own_priority()))
    thread.start()
    thread.join()
    return seen[0]


@pytest.mark.parametrize("nice", [10, 0])
async def test_pool_threads_and_the_threads_they_start_run_below_the_loop(nice: int) -> None:
    loop_priority = own_priority()
    workers = Workers(2, nice=nice)
    try:
        expected = min(19, loop_priority + nice)
        assert await workers.run(own_priority) == expected
        assert await workers.run(priority_of_a_thread_started_here) == expected
        assert own_priority() == loop_priority  # the loop's own thread keeps its priority
    finally:
        workers.close()
