"""Pieces the benchmarks share (the fleet tests take the port finder too): free loopback ports, process CPU
and memory, a real-time frame reader, the load client's window."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from parley.v1 import agent_session_service_pb2 as pb

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MEASURING = "measuring"  # the load client's first line: its callers are set up and its window starts


async def steady_window(load: asyncio.subprocess.Process) -> None:
    """Until the load client's steady state: its window has begun and its first second (skipped) is over."""
    assert load.stdout is not None
    line = await asyncio.wait_for(load.stdout.readline(), 300)
    if line.decode().strip() != MEASURING:
        raise RuntimeError(f"the load client did not start measuring (exit {await load.wait()})")
    await asyncio.sleep(1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(count: int) -> int:
    """The first of `count` consecutive loopback ports that are free now (the fleet tests use it too)."""
    for _ in range(200):
        first = free_port()
        if first + count >= 65536:
            continue
        taken: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                taken.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    """Resident memory of a live process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def stream_frames(stub, name: str, stop: asyncio.Event, lateness: list[float]) -> None:
    """Read a session's StreamAudio, recording each frame's lateness (ms) against its absolute schedule
    (first frame + n x 20 ms), after a first second of warm-up."""
    call = stub.StreamAudio()
    await call.write(pb.StreamAudioRequest(config=pb.StreamConfig(session=name)))
    first: float | None = None
    n = 0
    async for response in call:
        if response.WhichOneof("message") != "audio":
            continue
        now = time.monotonic()
        if first is None:
            first = now
        elif n > 50:
            lateness.append(max(0.0, now - (first + n * 0.02)) * 1000)
        n += 1
        if stop.is_set():
            break
    call.cancel()


async def talk(stub, name: str, stop: asyncio.Event, every_seconds: float) -> None:
    """Background audio on, then a short Say every `every_seconds` until `stop`."""
    await stub.PlayBackgroundAudio(pb.PlayBackgroundAudioRequest(session=name))
    while not stop.is_set():
        await stub.Say(pb.SayRequest(session=name, text="a short sentence"))
        await asyncio.sleep(every_seconds)
