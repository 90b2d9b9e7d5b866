"""Soak: 10,000 Start/Say/Close cycles and 1,000 StreamAudio attach/detach cycles; memory and tasks stay flat.

The server runs in this process (so its asyncio tasks can be counted) on a
loopback port; the clients are grpc.aio stubs on the same event loop.
Providers are the stand-ins. A warm-up of 1,000 cycles first fills what is
bounded by design (the 1,000 closed-session snapshots kept for Get), so the
figures after it show growth that would not stop.

Bound stated and checked: RSS grows by at most 25 MiB over each phase, and
the number of asyncio tasks and of active sessions returns to its baseline.

Writes bench/results/soak.json and prints a table.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from pathlib import Path
from typing import Any

import grpc
from common import STAND_INS

from parley.server import ParleyServer
from parley.sessions.session import Session
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2, session_pb2

RESULTS = Path(__file__).parent / "results" / "soak.json"
WARM_UP, CYCLES, ATTACHES, CONCURRENCY = 1_000, 10_000, 1_000, 8
RSS_BOUND_MIB = 25.0


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def snapshot(server: ParleyServer) -> dict[str, float]:
    await asyncio.sleep(0.2)  # let closing tasks finish
    gc.collect()
    return {"rss_mib": round(rss_mib(), 1), "tasks": len(asyncio.all_tasks()),
            "active_sessions": server.registry.active_count}


async def start_say_close(stub: pb_grpc.AgentSessionServiceStub, count: int) -> float:
    config = session_pb2.SessionConfig(providers=STAND_INS)
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            name = (await stub.Start(pb.StartRequest(config=config))).session.name
            await stub.Say(pb.SayRequest(session=name, text="hello there"))
            await stub.Close(pb.CloseRequest(session=name))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


async def attach_detach(stub: pb_grpc.AgentSessionServiceStub, server: ParleyServer, count: int) -> float:
    name = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_INS)))).session.name
    session = server.registry.get(name)
    config = pb.StreamAudioRequest(config=pb.StreamConfig(session=name))
    chunk = pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(pcm=bytes(640)))
    started = time.perf_counter()
    for _ in range(count):
        call = stub.StreamAudio()
        await call.write(config)
        await call.write(chunk)
        await call.read()  # a frame or an event: the stream is attached
        call.cancel()
        while isinstance(session, Session) and session.port.stream is not None:  # detached on the server
            await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    await stub.Close(pb.CloseRequest(session=name))
    return elapsed


async def main() -> dict[str, Any]:
    # the per-session request rate is off: 1,000 attaches to one session in a few seconds is the point
    settings = ServerSettings().replace(host="127.0.0.1", port=0, log_level="WARNING", max_requests_per_second=0,
                                        max_caller_requests_per_second=0, allow_stand_in_providers=True)
    server = ParleyServer(settings)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        await start_say_close(stub, WARM_UP)
        await attach_detach(stub, server, 100)
        before = await snapshot(server)
        cycles_s = await start_say_close(stub, CYCLES)
        after_cycles = await snapshot(server)
        attach_s = await attach_detach(stub, server, ATTACHES)
        after_attach = await snapshot(server)
    await server.stop()
    return {
        "cycles": CYCLES, "attaches": ATTACHES, "concurrency": CONCURRENCY, "rss_bound_mib": RSS_BOUND_MIB,
        "before": before, "after_cycles": after_cycles, "after_attaches": after_attach,
        "cycles_per_second": round(CYCLES / cycles_s, 1), "attaches_per_second": round(ATTACHES / attach_s, 1),
        "rss_growth_cycles_mib": round(after_cycles["rss_mib"] - before["rss_mib"], 1),
        "rss_growth_attaches_mib": round(after_attach["rss_mib"] - after_cycles["rss_mib"], 1),
    }


def report(result: dict[str, object]) -> None:
    rows = [("phase", "RSS MiB", "tasks", "active sessions")]
    for phase in ("before", "after_cycles", "after_attaches"):
        s = result[phase]
        assert isinstance(s, dict)
        rows.append((phase, str(s["rss_mib"]), str(s["tasks"]), str(s["active_sessions"])))
    for row in rows:
        print(f"{row[0]:<16}{row[1]:>10}{row[2]:>8}{row[3]:>17}")
    print(f"{result['cycles']} Start/Say/Close cycles at {result['cycles_per_second']}/s, "
          f"RSS {result['rss_growth_cycles_mib']:+} MiB; {result['attaches']} attach/detach at "
          f"{result['attaches_per_second']}/s, RSS {result['rss_growth_attaches_mib']:+} MiB "
          f"(bound {RSS_BOUND_MIB} MiB)")


if __name__ == "__main__":
    outcome = asyncio.run(main())
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(outcome, indent=2))
    report(outcome)
    flat = all(abs(float(outcome[k])) <= RSS_BOUND_MIB for k in ("rss_growth_cycles_mib", "rss_growth_attaches_mib"))
    same = outcome["before"]["tasks"] == outcome["after_cycles"]["tasks"] == outcome["after_attaches"]["tasks"]
    if not (flat and same):
        raise SystemExit("soak: memory or tasks grew past the stated bound")
