"""The remote providers' retry policy: bounded, jittered backoff; Retry-After honoured; never after output."""

from __future__ import annotations

import email.utils
import random
from collections.abc import AsyncIterator

import pytest

from parley.providers.retry import Retryable, RetryPolicy, retry_after_seconds, stream_with_retries


def test_backoff_is_jittered_below_a_doubling_ceiling_and_bounded() -> None:
    policy = RetryPolicy(max_retries=8, backoff_s=0.5, max_wait_s=3.0)
    rng = random.Random(7)
    for attempt in range(8):
        ceiling = min(3.0, 0.5 * 2**attempt)
        delays = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 2  # spread out, not in lockstep


def test_retry_after_is_honoured_up_to_the_longest_wait() -> None:
    policy = RetryPolicy(max_retries=3, backoff_s=0.5, max_wait_s=10.0)
    assert policy.delay(0, 4.0) == 4.0
    assert policy.delay(0, 11.0) is None  # longer than worth waiting: fail now


def test_retry_after_headers() -> None:
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    later = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_seconds({"retry-after": later}, now=1_000_000) == pytest.approx(30.0)
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


async def test_attempts_are_retried_before_output_and_never_after() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    outcomes = iter(["fail", "fail", "ok"])

    async def attempt() -> AsyncIterator[str]:
        if next(outcomes) == "fail":
            raise Retryable(RuntimeError("busy"), retry_after=0.1)
        yield "a"
        yield "b"

    policy = RetryPolicy(max_retries=2)
    assert [x async for x in stream_with_retries(policy, attempt, sleep)] == ["a", "b"]
    assert waits == [0.1, 0.1]

    async def breaks_midway() -> AsyncIterator[str]:
        yield "half"
        raise Retryable(RuntimeError("cut"))

    got: list[str] = []
    with pytest.raises(RuntimeError, match="cut"):
        async for item in stream_with_retries(policy, breaks_midway, sleep):
            got.append(item)
    assert got == ["half"] and waits == [0.1, 0.1]  # no new attempt once output was yielded


async def test_the_last_failure_is_raised_when_attempts_run_out() -> None:
    calls = 0

    async def sleep(seconds: float) -> None:
        pass

    async def attempt() -> AsyncIterator[str]:
        nonlocal calls
        calls += 1
        raise Retryable(ValueError(f"attempt {calls}"))
        yield ""  # pragma: no cover - makes this an async generator

    with pytest.raises(ValueError, match="attempt 3"):
        async for _ in stream_with_retries(RetryPolicy(max_retries=2), attempt, sleep):
            pass
    assert calls == 3
