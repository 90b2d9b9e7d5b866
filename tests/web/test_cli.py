"""`parley web` as a user runs it: a process reading PARLEY_ADDRESS and PARLEY_TOKEN like the other commands."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import grpc
import httpx

from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from tests.helpers import free_port
from tests.web.conftest import TOKEN, page_socket, wait_closed
from tests.web.test_bridge import STAND_INS


async def test_parley_web_serves_the_page_for_the_server_in_parley_address(server) -> None:
    port = free_port()
    env = {**os.environ, "PARLEY_ADDRESS": f"127.0.0.1:{server.port}", "PARLEY_TOKEN": TOKEN}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "parley.cli", "web", "--port", str(port),
                                                "--log-level", "WARNING", env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert f"open http://127.0.0.1:{port}/" in first and f"127.0.0.1:{server.port}" in first, first
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http, asyncio.timeout(30):
            while True:  # until uvicorn listens
                try:
                    status = (await http.get(url + "/api/status")).json()
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        assert status["server"]["status"] == "SERVING"
        async with page_socket(url) as page:  # the token from PARLEY_TOKEN gets the session started
            await page.send({"type": "start", "config": STAND_INS})
            name = (await page.next_frame("session"))["session"]["name"]
            proc.send_signal(signal.SIGINT)  # stopping closes the open tab, and so its session
            assert await page.closed() == 1012  # "service restart"
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            assert (await wait_closed(pb_grpc.AgentSessionServiceStub(channel), name)).close_reason == "browser tab closed"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
