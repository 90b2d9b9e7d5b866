"""Several processes of one model: jobs at once run in different processes, and a job waits for a free one."""

from __future__ import annotations

import asyncio
import functools
import os
import time

from parley.providers.model_pool import ModelPool
from parley.providers.workers import Workers

SEVEN = functools.partial(int, "7")  # a stand-in model, picklable by name


def _pid_after(model: int, seconds: float) -> int:
    """A job: the process it ran in, after `seconds`."""
    time.sleep(seconds)
    return os.getpid()


async def _run(pool: ModelPool, workers: Workers, seconds: float) -> int:
    async with pool.process() as process:
        return await process.run(workers, _pid_after, seconds)


async def test_jobs_at_once_run_in_different_processes(workers: Workers) -> None:
    pool = ModelPool(SEVEN, 2, job_timeout=30)
    try:
        pids = await pool.start(workers)
        assert len(set(pids)) == 2 and os.getpid() not in pids
        assert sorted(await asyncio.gather(_run(pool, workers, 0.2), _run(pool, workers, 0.2))) == sorted(pids)
    finally:
        pool.close()


async def test_a_job_waits_while_every_process_is_busy(workers: Workers) -> None:
    pool = ModelPool(SEVEN, 1, job_timeout=30)
    try:
        [pid] = await pool.start(workers)
        assert pool.has_free()
        first = asyncio.create_task(_run(pool, workers, 0.3))
        await asyncio.sleep(0)  # the first job takes the only process
        assert not pool.has_free()
        second = asyncio.create_task(_run(pool, workers, 0.0))
        await asyncio.sleep(0.1)
        assert not second.done()
        assert await first == pid and await second == pid
        assert pool.has_free()
    finally:
        pool.close()
