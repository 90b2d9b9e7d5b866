"""Several processes of one model: jobs at once run in different processes, and a job waits for a free one."""

from __future__ import annotations

import asyncio
import functools
import os
from pathlib import Path

from parley.providers.model_pool import ModelPool
from parley.providers.workers import Workers

SEVEN = functools.partial(int, "7")  # a stand-in model, picklable by name


def _pid(model: int, gate: str = "") -> int:
    """A job: the process it ran in, once `gate` (a FIFO, if given) has been written to."""
    if gate:
        Path(gate).read_text()
    return os.getpid()


async def _run(pool: ModelPool, workers: Workers, gate: str = "") -> int:
    async with pool.process() as process:
        return await process.run(workers, _pid, gate)


async def test_jobs_at_once_run_in_different_processes(workers: Workers) -> None:
    pool = ModelPool(SEVEN, 2, job_timeout=30)
    try:
        pids = await pool.start(workers)
        assert len(set(pids)) == 2 and os.getpid() not in pids
        assert sorted(await asyncio.gather(_run(pool, workers), _run(pool, workers))) == sorted(pids)
    finally:
        pool.close()


async def test_a_job_waits_while_every_process_is_busy(workers: Workers, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    pool = ModelPool(SEVEN, 1, job_timeout=30)
    try:
        [pid] = await pool.start(workers)
        assert pool.has_free()
        first = asyncio.create_task(_run(pool, workers, str(gate)))  # holds the only process until the gate opens
        await asyncio.sleep(0)  # the first job takes the only process
        assert not pool.has_free()
        second = asyncio.create_task(_run(pool, workers))
        await asyncio.sleep(0)
        assert not second.done()
        await asyncio.to_thread(gate.write_text, "open")  # returns once the first job is reading the gate
        assert await first == pid and await second == pid
        assert pool.has_free()
    finally:
        pool.close()
