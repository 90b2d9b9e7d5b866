"""The host's latency floor: what any real-time gRPC server on this machine gets before Parley does anything.

Two figures, both on an absolute 20 ms schedule:

  wake-up     a process that sleeps until each 20 ms deadline: how late it wakes
  round trip  N callers, each on its own channel, write a 20 ms chunk every 20 ms to the
              bare grpc.aio echo (bench/echo_server.py) and read its frame back: how late
              each write goes out, and how long from the write to its frame's arrival

When the round trip alone is over a lateness target at some N while the
wake-up is not, the host's I/O path (system calls, loopback TCP, gRPC's
threads) sets that floor, and no server on it can be under the target there.
The capacity and scale benchmarks' figures read against it. The callers run
on uvloop, as the capacity load client does.

Writes bench/results/host.json and prints the figures.

    python bench/bench_host.py [--callers 1,10,30] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import uvloop
from bench_capacity import start_echo, wait_ready
from common import free_port

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2

RESULTS = Path(__file__).parent / "results" / "host.json"
PERIOD = 0.02
CHUNK = bytes(640)  # 20 ms of 16 kHz mono
SKIP = 50  # the first second of each caller is not counted


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.array(values)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2)}


def wake_up(seconds: float) -> dict[str, float]:
    """Lateness of a plain sleep to each 20 ms deadline (blocking: this runs before any loop)."""
    start, late = time.monotonic(), []
    for i in range(1, int(seconds / PERIOD) + 1):
        deadline = start + i * PERIOD
        time.sleep(max(0.0, deadline - time.monotonic()))
        late.append((time.monotonic() - deadline) * 1000)
    return percentiles(late[SKIP:])


async def caller(target: str, seconds: float, write_late: list[float], round_trips: list[float]) -> None:
    channel = grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
    call = pb_grpc.AgentSessionServiceStub(channel).StreamAudio()
    await call.write(pb.StreamAudioRequest(config=pb.StreamConfig()))
    sent: dict[int, float] = {}

    async def read() -> None:
        async for response in call:
            written = sent.pop(response.audio.sequence, None)
            if written is not None:
                round_trips.append((time.monotonic() - written) * 1000)

    reader = asyncio.create_task(read())
    start, i = time.monotonic(), 0
    while (now := time.monotonic()) - start < seconds:
        if i >= SKIP:
            write_late.append((now - (start + i * PERIOD)) * 1000)
            sent[i] = now
        await call.write(pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(pcm=CHUNK)))
        i += 1
        await asyncio.sleep(max(0.0, start + i * PERIOD - time.monotonic()))
    await call.done_writing()
    await reader
    await channel.close()


async def round_trip(target: str, callers: int, seconds: float) -> dict[str, dict[str, float]]:
    write_late: list[float] = []
    round_trips: list[float] = []
    await asyncio.gather(*(caller(target, seconds, write_late, round_trips) for _ in range(callers)))
    return {"write_lateness": percentiles(write_late), "round_trip": percentiles(round_trips)}


async def echo_ready(port: int) -> subprocess.Popen:
    echo = start_echo(port)
    await wait_ready(port)
    return echo


def main(callers: list[int], seconds: float) -> None:
    result: dict[str, object] = {"wake_up": wake_up(seconds)}
    print(f"wake-up lateness: {result['wake_up']}", flush=True)
    port = free_port()
    echo = asyncio.run(echo_ready(port))
    try:
        for n in callers:
            figures = uvloop.run(round_trip(f"127.0.0.1:{port}", n, seconds))
            result[f"echo_{n}_callers"] = figures
            print(f"{n:4d} callers: write lateness {figures['write_lateness']}, "
                  f"round trip {figures['round_trip']}", flush=True)
    finally:
        echo.terminate()
        echo.wait(10)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", default="1,10,30", help="comma-separated N")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per measurement")
    args = parser.parse_args()
    main([int(n) for n in args.callers.split(",")], args.seconds)
