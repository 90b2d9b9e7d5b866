"""The example clients through nginx, unchanged: each sends the session header on every call of its session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.examples.conftest import TOKEN
from tests.examples.test_clients import node_client_conversation, python_client_conversation
from tests.examples.test_grpcurl import tour
from tests.examples.test_talk import talk_conversation
from tests.fleet.support import Fleet

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The address of nginx in front of three workers with authentication on (the examples send a token)."""
    fleet = Fleet(Path(tmp_path_factory.mktemp("fleet")), env={"PARLEY_AUTH_TOKENS": f"{TOKEN} examples"})
    try:
        await fleet.start()
        yield fleet.address
    finally:
        await fleet.stop()


async def test_python_client_through_the_proxy(proxy: str, tmp_path: Path) -> None:
    await asyncio.to_thread(python_client_conversation, proxy, tmp_path)


async def test_node_client_through_the_proxy(proxy: str, tmp_path: Path) -> None:
    await asyncio.to_thread(node_client_conversation, proxy, tmp_path)


async def test_grpcurl_tour_through_the_proxy(proxy: str) -> None:
    await asyncio.to_thread(tour, proxy)


async def test_parley_talk_through_the_proxy(proxy: str, tmp_path: Path) -> None:
    await talk_conversation(proxy, tmp_path)
