"""`parley phone`: the bridge as its own process, against a real Parley server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import httpx
from google.protobuf import json_format

from parley.v1 import agent_session_service_pb2 as pb
from tests.engine.conftest import STAND_IN_PROVIDERS
from tests.phone.provider import Provider


async def serving_address(proc: asyncio.subprocess.Process) -> str:
    """The address from the `serving` line of the JSON log on stderr."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = await asyncio.wait_for(proc.stderr.readline(), deadline - time.monotonic())
        assert line, "parley phone exited before serving"
        if line.startswith(b"{") and (entry := json.loads(line))["event"] == "serving":
            return entry["address"]
    raise AssertionError("no serving line")


@contextlib.asynccontextmanager
async def phone_command(parley_port: int, *flags: str) -> AsyncIterator[str]:
    """`parley phone` on a free port (its address), calls starting stand-in sessions on the server at
    `parley_port`; stopped with SIGTERM at the end, which it must obey with exit status 0."""
    providers = json_format.MessageToJson(STAND_IN_PROVIDERS)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley.cli", "phone", "--port", "0", "--lead-ms", "0", *flags,
        "--session-config", f'{{"providers": {providers}, "instructions": "Answer the phone."}}',
        env={**os.environ, "PARLEY_ADDRESS": f"127.0.0.1:{parley_port}"}, stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield await serving_address(proc)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def call_in_progress(address: str) -> Provider:
    """A phone call on the bridge at `address` that has started hearing the agent."""
    provider = Provider(f"ws://{address}/phone")
    await provider.open()
    await provider.wait_for(lambda: len(provider.of("media")) >= 3)
    return provider


async def hang_up(provider: Provider) -> None:
    await provider.hang_up()
    await provider.wait_for(lambda: provider.closed)
    await provider.aclose()


async def close_code_after_sending(address: str, size: int) -> int | None:
    """A call that sends one message of `size` bytes: how its socket closes."""
    caller = Provider(f"ws://{address}/phone")
    await caller.open()
    await caller.send("x" * size)
    await caller.wait_for(lambda: caller.closed)
    await caller.aclose()
    return caller.close_code


async def test_parley_phone_serves_calls_and_stops_on_sigterm(server, stub) -> None:  # type: ignore[no-untyped-def]
    async with phone_command(server.port) as address:
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://{address}/healthz")).text == "ok"
        provider = await call_in_progress(address)
        session = (await stub.List(pb.ListRequest())).sessions[0]
        assert session.config.instructions == "Answer the phone."
        assert session.config.providers.tts.name == "tone"
        await hang_up(provider)
        assert await close_code_after_sending(address, 70 * 1024) == 1009  # over the bridge's 64 KiB


async def test_with_page_the_browser_page_and_phone_calls_share_one_port(server, stub) -> None:  # type: ignore[no-untyped-def]
    async with phone_command(server.port, "--page") as address:
        async with httpx.AsyncClient() as http:
            assert "<title>Parley" in (await http.get(f"http://{address}/")).text
            status = (await http.get(f"http://{address}/api/status")).json()
            assert status["server"]["status"] == "SERVING"
        await hang_up(await call_in_progress(address))
        assert len((await stub.List(pb.ListRequest())).sessions) == 1
        assert await close_code_after_sending(address, 300 * 1024) == 1009  # over the page's 256 KiB
        async with httpx.AsyncClient() as http:  # that socket closed; the server serves on
            assert (await http.get(f"http://{address}/healthz")).text == "ok"


async def test_a_bad_session_config_is_a_clear_error() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley.cli", "phone", "--session-config", '{"instructionz": 1}',
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2 and b"--session-config" in err and b"instructionz" in err
