"""Fixtures of the scale-out tests: fleets of real processes behind a real nginx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.fleet.support import Fleet


@pytest.fixture
async def make_fleet(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Fleet]]]:
    """Start fleets (`Fleet(...)` arguments; `proxied` = how many workers nginx names); all stop at the end."""
    fleets: list[Fleet] = []

    async def make(proxied: int | None = None, **kwargs) -> Fleet:
        fleet = Fleet(tmp_path / f"fleet-{len(fleets)}", **kwargs)
        fleet.directory.mkdir()
        fleets.append(fleet)
        await fleet.start(proxied)
        return fleet

    try:
        yield make
    finally:
        for fleet in fleets:
            await fleet.stop()
