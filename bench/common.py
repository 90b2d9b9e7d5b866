"""Pieces the benchmarks share (the fleet tests take the port finder too): free loopback ports, process CPU
and memory, a real-time frame reader, the load client's window."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from parley.sessions.config import ProviderChoice, ProvidersConfig
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MEASURING = "measuring"  # the load client's first line: its callers are set up and its window starts
STAND_IN_NAMES = {"tts": "tone", "stt": "scripted", "vad": "energy", "llm": "echo"}
"""The cheap deterministic providers, one per stage: the figures are the engine's, not the models'."""
STAND_INS = session_pb2.ProvidersConfig(**{stage: session_pb2.ProviderSpec(name=name)
                                           for stage, name in STAND_IN_NAMES.items()})
STAND_IN_CHOICES = ProvidersConfig(**{stage: ProviderChoice(name) for stage, name in STAND_IN_NAMES.items()})
"""The same, for sessions made in process."""


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


def children(pid: int, marker: str = "") -> list[int]:
    """Child processes of `pid` (whose command line contains `marker`)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ppid == pid and marker in cmdline:
            found.append(int(entry))
    return sorted(found)


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants (a server's model processes, nginx's workers)."""
    tree, index = [pid], 0
    while index < len(tree):
        tree += children(tree[index])
        index += 1
    return tree


def _stat_fields(path: str) -> list[str]:
    """A /proc stat file's fields after the command name (which may hold spaces and parentheses)."""
    return Path(path).read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process and its descendants (live, or ended and waited for)."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = _stat_fields(f"/proc/{member}/stat")
        except OSError:
            continue  # ended meanwhile: its time moves to its parent's waited-for children's
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / CLOCK_TICKS


def loop_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process's main thread: the servers' event loop (gRPC's own threads aside)."""
    fields = _stat_fields(f"/proc/{pid}/task/{pid}/stat")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    """Resident memory of a live process and its live descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in lines if line.startswith("VmRSS:")), 0)
    return total


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
