"""A closing session's tasks are cancelled and waited for, but a task that will not end does not hold the close."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from parley.cancelling import cancel_and_wait
from parley.sessions.tasks import BackgroundTasks


async def test_cancelled_tasks_end_before_the_wait_returns() -> None:
    tasks = BackgroundTasks("sessions/t")
    started, ended = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    tasks.spawn(work(), "work")
    await started.wait()
    await tasks.cancel()
    assert ended.is_set()


async def test_a_task_that_swallows_its_cancellation_is_left_behind_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()  # the bug this guards against: a cancellation swallowed

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="parley.tasks"):
        await asyncio.wait_for(cancel_and_wait([task], timeout=0.05), 5)
    assert not task.done()
    assert [r.task for r in caplog.records] == ["stubborn"]
    release.set()
    await task


async def test_what_a_task_raised_before_the_cancel_is_dropped_not_reported_as_never_retrieved() -> None:
    """Callers cancel a pair of tasks once one has ended; the other's failure is theirs to ignore."""
    unhandled: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: unhandled.append(context))

    async def fail() -> None:
        raise RuntimeError("the peer went away")

    failed = asyncio.create_task(fail())
    waiting = asyncio.create_task(asyncio.Event().wait())
    await asyncio.wait([failed], timeout=5)
    await cancel_and_wait([failed, waiting])
    assert waiting.cancelled()
    del failed, waiting
    gc.collect()  # a task whose exception nobody retrieved is reported when it is collected
    assert unhandled == []
