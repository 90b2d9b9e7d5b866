"""Small test helpers: rich gRPC errors, free ports, waiting for a server process."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc


def error_details(exc: grpc.aio.AioRpcError) -> tuple[list[tuple[str, str]], str]:
    """(BadRequest field violations as (field, description), ErrorInfo reason) of a failed call."""
    raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw is not None, f"no rich status on {exc.code()}: {exc.details()}"
    status = status_pb2.Status.FromString(raw)
    assert status.code == exc.code().value[0]
    violations: list[tuple[str, str]] = []
    reason = ""
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return violations, reason


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(200):
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("server never became SERVING")


@asynccontextmanager
async def server_process(*flags: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, grpc.aio.Channel]]:
    """`parley serve` (with extra `flags`) as a real process on a free loopback port, SERVING, with a channel to it.

    Its stderr (the JSON log) is piped for the test to read; the process is killed if the test leaves it running.
    """
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley.cli", "serve", "--port", str(port), "--shutdown-grace", "2",
        "--warm-up", "false", *flags, stderr=asyncio.subprocess.PIPE, env={**os.environ},
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await wait_serving(channel)
            yield proc, channel
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def eventually(check, timeout: float = 10.0, what: str = "the condition"):  # type: ignore[no-untyped-def]
    """Poll `check` (a function, or one returning an awaitable) until it returns something true; return that.

    A bound on a hang, not a speed claim: the timeout is far above what any run needs.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} never held within {timeout:g} s")
        await asyncio.sleep(0.02)
