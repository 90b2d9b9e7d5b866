"""A closing session's tasks are cancelled and waited for, but a task that will not end does not hold the close."""

from __future__ import annotations

import asyncio
import logging

import pytest

from parley.sessions.tasks import BackgroundTasks, cancel_and_wait


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
