"""A model in a process of its own: jobs run there, a failing job leaves the model, a dead process is replaced."""

from __future__ import annotations

import functools
import itertools
import operator
import os
import resource
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import aclosing

import pytest

from parley.providers.model_process import ModelProcess, ModelProcessDied
from parley.providers.workers import Workers

# A stand-in model, picklable by name: the number 7 ("loaded" by int("7")); jobs are stdlib functions of it.
SEVEN = functools.partial(int, "7")


@pytest.fixture
def hosted() -> Iterator[ModelProcess]:
    process = ModelProcess(SEVEN, job_timeout=30)
    yield process
    process.close()


async def test_jobs_run_on_the_model_in_another_process(hosted: ModelProcess, workers: Workers) -> None:
    pid = await hosted.start(workers)
    assert pid != os.getpid()
    assert await hosted.run(workers, operator.mul, 6) == 42


async def test_a_failing_job_is_an_error_and_the_model_stays_loaded(hosted: ModelProcess, workers: Workers) -> None:
    pid = await hosted.start(workers)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        await hosted.run(workers, operator.truediv, 0)
    assert await hosted.run(workers, operator.add, 1) == 8
    assert await hosted.start(workers) == pid  # the same process: nothing reloaded


async def test_a_process_that_dies_in_a_job_fails_it_and_the_next_job_gets_a_new_one(
    hosted: ModelProcess, workers: Workers
) -> None:
    first = await hosted.start(workers)
    with pytest.raises(ModelProcessDied, match="exit code 7"):
        await hosted.run(workers, os._exit)  # os._exit(7): the process ends mid-job
    assert await hosted.run(workers, operator.mul, 2) == 14
    assert await hosted.start(workers) != first


async def test_a_job_past_its_time_has_its_process_killed_and_the_model_comes_back(workers: Workers) -> None:
    process = ModelProcess(SEVEN, job_timeout=2)
    try:
        first = await process.start(workers)
        with pytest.raises(ModelProcessDied, match="after 2 s without an answer"):
            await process.run(workers, time.sleep)  # time.sleep(7): a job that hangs past the timeout
        assert await process.run(workers, operator.mul, 5) == 35
        assert await process.start(workers) != first
    finally:
        process.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a process's nice value and policy as Linux reports them")
async def test_the_process_runs_at_the_provider_threads_lower_priority(
    hosted: ModelProcess, workers: Workers
) -> None:
    pid = await hosted.start(workers)
    assert workers.nice > 0
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + workers.nice)
    assert workers.idle
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE  # the loop takes a core from it the moment it wakes
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


async def test_signals_to_the_servers_process_group_leave_the_process_to_the_server(
    hosted: ModelProcess, workers: Workers
) -> None:
    pid = await hosted.start(workers)
    os.kill(pid, signal.SIGINT)  # Ctrl-C in the server's terminal reaches the whole group
    os.kill(pid, signal.SIGTERM)
    assert await hosted.run(workers, operator.mul, 3) == 21
    assert await hosted.start(workers) == pid


async def test_closing_ends_the_process(workers: Workers) -> None:
    process = ModelProcess(SEVEN, job_timeout=30)
    pid = await process.start(workers)
    process.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _fill(model: int, mib: int) -> int:
    """A job: fill a fresh buffer of `mib` MiB, then free it; the minor page faults that took."""
    import numpy as np

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(mib << 20, np.uint8)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


async def test_a_job_reuses_the_memory_the_last_job_freed(hosted: ModelProcess, workers: Workers) -> None:
    """A model's process runs the same job again and again: the large buffers a job frees stay the process's,
    so the next job does not fault them in again page by page (Whisper took 80,000 faults per transcription)."""
    first = await hosted.run(workers, _fill, 64)  # larger than glibc ever reuses by default (32 MiB)
    again = await hosted.run(workers, _fill, 64)
    assert again * 10 < first, f"{again} page faults to fill a 64 MiB buffer again, {first} the first time"


def _count_from(model: int, limit: int) -> Iterator[int]:
    """A stand-in model's generator: model, model + 1, ... (limit items)."""
    yield from itertools.islice(itertools.count(model), limit)


def _count_slowly(model: int, limit: int, pause: float) -> Iterator[int]:
    for x in itertools.islice(itertools.count(model), limit):
        time.sleep(pause)
        yield x


def _count_then_fail(model: int) -> Iterator[int]:
    yield model
    raise ValueError("no more numbers")


async def test_a_stream_yields_the_childs_items_as_they_come_and_frees_the_model(
    hosted: ModelProcess, workers: Workers
) -> None:
    done: list[bool] = []
    items = [x async for x in hosted.stream(workers, _count_from, 4, on_done=lambda: done.append(True))]
    assert items == [7, 8, 9, 10]
    assert await hosted.run(workers, operator.add, 1) == 8
    assert done == [True]  # on the loop, once the thread that read the stream let go of the child


async def test_closing_a_stream_stops_the_childs_generator_and_the_next_job_runs(
    hosted: ModelProcess, workers: Workers
) -> None:
    pid = await hosted.start(workers)
    async with aclosing(hosted.stream(workers, _count_from, 10**9)) as numbers:
        assert [await anext(numbers), await anext(numbers)] == [7, 8]
    assert await hosted.run(workers, operator.mul, 3) == 21  # the endless generator was stopped
    assert await hosted.start(workers) == pid


async def test_a_stream_that_raises_is_an_error_after_its_items_and_the_model_stays(
    hosted: ModelProcess, workers: Workers
) -> None:
    pid = await hosted.start(workers)
    seen: list[int] = []
    with pytest.raises(RuntimeError, match="ValueError: no more numbers"):
        async for x in hosted.stream(workers, _count_then_fail):
            seen.append(x)
    assert seen == [7]
    assert await hosted.start(workers) == pid


async def test_a_process_that_dies_in_a_stream_fails_it_and_the_next_job_gets_a_new_one(
    hosted: ModelProcess, workers: Workers
) -> None:
    first = await hosted.start(workers)
    numbers = hosted.stream(workers, _count_from, 10**9)
    assert await anext(numbers) == 7
    os.kill(first, signal.SIGKILL)  # once: the dead process is reaped, while items it sent may still come
    with pytest.raises(ModelProcessDied):
        async for _ in numbers:
            pass
    assert await hosted.run(workers, operator.mul, 2) == 14
    assert await hosted.start(workers) != first


async def test_a_stream_may_outlast_the_timeout_while_its_items_keep_coming(workers: Workers) -> None:
    process = ModelProcess(SEVEN, job_timeout=1)  # the timeout is between answers, not for the whole stream
    try:
        pid = await process.start(workers)
        assert [x async for x in process.stream(workers, _count_slowly, 6, 0.3)] == [7, 8, 9, 10, 11, 12]
        assert await process.start(workers) == pid  # 1.8 s of items, and the same process
    finally:
        process.close()
