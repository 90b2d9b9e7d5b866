"""Capacity: how many real-time calls one Parley process carries, next to the bare transport.

For each N, in the same run: the bare grpc.aio echo (bench/echo_server.py),
the same echo shaped like a server that speaks on its own clock (a reader
task per stream, frames from Parley's frame clock and outbox; stand-in
series only), and then Parley, each in its own fresh process, loaded by the
same client (bench/capacity_load.py, its own process): N callers, each on
its own connection, audio both ways every 20 ms, the agent speaking, caller
speech that the VAD, the recognizer and barge-in act on, background audio on
a third of the sessions. Server CPU is read from /proc over the client's measuring
window, the whole process's and apart from it its main thread's (the event
loop; the rest is gRPC's own threads); CPU per session is compared with the
echo's at the same N (and with the clocked echo's: the part of the cost
that is the conversation). The figures move from run to run on a shared
machine: each N runs `--rounds` times (3) and the round with the median p99
is reported.

Stand-in providers first (the engine's own cost), then the default
providers (espeak, Whisper, WebRTC VAD, the local model), where the time
from the end of a caller's speech to its final transcript shows what the
callers wait for the recognizer as they add up (the models run below the
audio loop's priority: frames stay on time, answers come later). Between
the two, past capacity: `--overload` OFFERED callers at a server started
with `--max-streams` LIMIT (150 at 100), next to the echo at LIMIT: the
callers it refuses hang up, the admitted calls are timed. Then the
memory of 200 idle sessions. A series goes on past the 10 ms line (on a slow
host the bare echo itself may be over it) and ends once two steps in a row
are 100 ms late. Writes bench/results/capacity.json, and the README's
table made from it (bench/capacity_table.py) as capacity.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
from capacity_table import RESULTS, markdown
from common import STAND_INS, cpu_seconds, free_port, loop_cpu_seconds, rss_kib, steady_window

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2

HERE = Path(__file__).parent
STAND_IN_STEPS = (25, 50, 75, 100, 125, 150)
DEFAULT_STEPS = (1, 10, 25, 50, 75)
SECONDS = 10.0
LATENESS_LIMIT_MS = 10.0
COLLAPSED_MS = 100.0  # a series ends after two steps in a row this late: past what the machine carries


async def wait_ready(port: int, timeout: float = 120.0) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout)


def start_parley(port: int, max_streams: int = 2000) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "parley.cli", "serve", "--port", str(port), "--max-sessions", "2000",
         "--max-sessions-per-principal", "2000", "--max-streams", str(max_streams), "--log-level", "WARNING",
         "--drain-timeout", "0", "--allow-stand-in-providers", "--max-caller-requests-per-second", "0"],
        stderr=subprocess.DEVNULL)


def start_echo(port: int, clocked: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "echo_server.py"), str(port)]
                            + (["--clocked"] if clocked else []), stderr=subprocess.DEVNULL)


async def load(server: subprocess.Popen, port: int, sessions: int, *, echo: bool, default: bool) -> dict:
    """Run the load client against `server`; CPU of both over the measuring window."""
    args = [sys.executable, str(HERE / "capacity_load.py"), "--target", f"127.0.0.1:{port}",
            "--sessions", str(sessions), "--seconds", str(SECONDS)]
    args += ["--echo"] if echo else []
    args += ["--default-providers"] if default else []
    client = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    await steady_window(client)  # past the client's set-up (channels, Start calls) and its first second
    server_before, client_before, began = cpu_seconds(server.pid), cpu_seconds(client.pid), time.monotonic()
    loop_before = loop_cpu_seconds(server.pid)
    await asyncio.sleep(SECONDS - 2.0)
    wall = time.monotonic() - began
    server_cpu = (cpu_seconds(server.pid) - server_before) / wall
    loop_cpu = (loop_cpu_seconds(server.pid) - loop_before) / wall
    client_cpu = (cpu_seconds(client.pid) - client_before) / wall
    rss = rss_kib(server.pid)
    out, _ = await client.communicate()
    result = json.loads(out)
    result.update(server_cpu=server_cpu, loop_cpu=loop_cpu, client_cpu=client_cpu, server_rss_mib=rss / 1024)
    return result


async def run_echo(sessions: int, default: bool, clocked: bool) -> dict:
    port = free_port()
    echo_server = start_echo(port, clocked)
    try:
        await wait_ready(port)
        return await load(echo_server, port, sessions, echo=True, default=default)
    finally:
        echo_server.terminate()
        echo_server.wait(10)


async def run_parley(sessions: int, default: bool, max_streams: int = 2000) -> dict:
    port = free_port()
    parley = start_parley(port, max_streams)
    try:
        await wait_ready(port)
        return await load(parley, port, sessions, echo=False, default=default)
    finally:
        parley.terminate()
        parley.wait(10)


async def step(sessions: int, default: bool) -> dict:
    echo = await run_echo(sessions, default, clocked=False)
    clocked = None if default else await run_echo(sessions, default, clocked=True)
    engine = await run_parley(sessions, default)
    row = {"sessions": sessions, "echo": echo, "parley": engine,
           "cpu_per_session_vs_echo": cpu_ratio(engine, echo)}
    if clocked is not None:
        row.update(clocked_echo=clocked, clocked_echo_vs_echo=cpu_ratio(clocked, echo),
                   cpu_per_session_vs_clocked_echo=cpu_ratio(engine, clocked))
    return row


def median_round(tries: list[dict]) -> dict:
    """The round with the median p99 (it stands for its step), with every round's p99 beside it."""
    tries = sorted(tries, key=lambda r: r["parley"]["p99_ms"])
    return {**tries[len(tries) // 2], "rounds_p99_ms": [r["parley"]["p99_ms"] for r in tries]}


def cpu_ratio(server: dict, baseline: dict) -> float:
    return server["server_cpu"] / baseline["server_cpu"] if baseline["server_cpu"] else float("nan")


async def overload(offered: int, limit: int, rounds: int) -> dict:
    """`offered` stand-in callers at a server carrying at most `limit` streams, next to the echo at `limit`."""
    tries: list[dict] = []
    for _ in range(rounds):
        echo = await run_echo(limit, default=False, clocked=False)
        engine = await run_parley(offered, default=False, max_streams=limit)
        tries.append({"offered": offered, "max_streams": limit, "echo": echo, "parley": engine,
                      "cpu_per_session_vs_echo": cpu_ratio(engine, echo)})
    row = median_round(tries)
    e, p = row["echo"], row["parley"]
    print(f"  {offered} offered, --max-streams {limit}: {p['streams_refused']} refused at once; the admitted "
          f"p50 {p['p50_ms']:.1f} p99 {p['p99_ms']:.1f} max {p['max_ms']:.1f} ms dropped {p['frames_dropped']} "
          f"cpu {p['server_cpu'] * 100:.0f}% x{row['cpu_per_session_vs_echo']:.2f} of the echo at {limit} "
          f"(echo p99 {e['p99_ms']:.1f} ms cpu {e['server_cpu'] * 100:.0f}%); p99 of the rounds "
          + " / ".join(f"{x:.1f}" for x in row["rounds_p99_ms"]) + " ms"
          + (f" errors {p['errors']}" if p["errors"] else ""), flush=True)
    return row


async def idle_memory(count: int = 200) -> dict:
    port = free_port()
    parley = start_parley(port)
    try:
        await wait_ready(port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.AgentSessionServiceStub(channel)
            config = session_pb2.SessionConfig(providers=STAND_INS)
            for _ in range(20):  # warm every code path first, then measure the increment
                await stub.Start(pb.StartRequest(config=config))
            await asyncio.sleep(1.0)
            before = rss_kib(parley.pid)
            for _ in range(count):
                await stub.Start(pb.StartRequest(config=config))
            await asyncio.sleep(1.0)
            after = rss_kib(parley.pid)
    finally:
        parley.terminate()
        parley.wait(10)
    return {"sessions": count, "rss_before_mib": before / 1024, "rss_after_mib": after / 1024,
            "kib_per_idle_session": (after - before) / count}


def print_row(row: dict) -> None:
    e, p = row["echo"], row["parley"]
    print(f"  {row['sessions']:4d} | echo p99 {e['p99_ms']:6.1f} ms cpu {e['server_cpu'] * 100:4.0f}% "
          f"(loop {e['loop_cpu'] * 100:.0f}%) | "
          f"parley p50 {p['p50_ms']:6.1f} p99 {p['p99_ms']:7.1f} max {p['max_ms']:7.1f} ms "
          f"dropped {p['frames_dropped']:5d} cpu {p['server_cpu'] * 100:4.0f}% (loop {p['loop_cpu'] * 100:.0f}%) "
          f"x{row['cpu_per_session_vs_echo']:.2f}{_clocked(row)} rss {p['server_rss_mib']:5.0f} MiB "
          f"events {sum(p['events_per_session_second'].values()):.1f}/s per session "
          f"client {p['client_cpu'] * 100:3.0f}% speaking {p['speaking_share'] * 100:3.0f}% "
          f"say->frame p50 {_ms(p['say_to_first_frame_ms_p50'])} p99 {_ms(p['say_to_first_frame_ms_p99'])} ms, "
          f"{row['sessions']} at once p50 {_ms(p['burst_say_to_first_frame_ms_p50'])} "
          f"max {_ms(p['burst_say_to_first_frame_ms_max'])} ms (received p50 {_ms(p['burst_say_received_ms_p50'])} "
          f"last {_ms(p['burst_say_received_ms_max'])}, then first frame p50 "
          f"{_ms(p['burst_received_to_first_frame_ms_p50'])} max {_ms(p['burst_received_to_first_frame_ms_max'])} ms)"
          + _transcripts(p) + (f" errors {p['errors']}" if p["errors"] else ""), flush=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else str(round(value))


def _clocked(row: dict) -> str:
    """The clocked echo's p99 and CPU, and Parley's CPU per session against it."""
    if "clocked_echo" not in row:
        return ""
    c = row["clocked_echo"]
    return (f" (clocked echo p99 {c['p99_ms']:.1f} ms cpu {c['server_cpu'] * 100:.0f}% "
            f"(loop {c['loop_cpu'] * 100:.0f}%) "
            f"x{row['clocked_echo_vs_echo']:.2f}; parley vs it x{row['cpu_per_session_vs_clocked_echo']:.2f})")


def _transcripts(p: dict) -> str:
    """Final transcript after the end of the caller's speech, and the share of stretches that got one."""
    if p.get("final_transcript_ms_p50") is None:
        return ""
    return (f" transcript p50 {p['final_transcript_ms_p50']:.0f} p99 {p['final_transcript_ms_p99']:.0f} ms"
            f" ({p['transcribed_share'] * 100:.0f} %)")


async def series(steps: tuple[int, ...], default: bool, rounds: int) -> list[dict]:
    """Each N `rounds` times; the round with the median p99 stands for it (the figures move from run to run)."""
    rows = []
    collapsed = 0
    for sessions in steps:
        row = median_round([await step(sessions, default) for _ in range(rounds)])
        rows.append(row)
        print_row(row)
        collapsed = collapsed + 1 if row["parley"]["p99_ms"] >= COLLAPSED_MS else 0
        if collapsed == 2:
            break
    return rows


async def main(rounds: int, offered: int, limit: int) -> None:
    print(f"stand-in providers (the engine's own cost), median p99 of {rounds} rounds:", flush=True)
    stand_ins = await series(STAND_IN_STEPS, default=False, rounds=rounds)
    print("past capacity, with a stream limit (stand-ins):", flush=True)
    limited = await overload(offered, limit, rounds)
    print("default providers (espeak, Whisper, WebRTC VAD, local model):", flush=True)
    defaults = await series(DEFAULT_STEPS, default=True, rounds=rounds)
    memory = await idle_memory()
    print(f"idle sessions: {memory['kib_per_idle_session']:.0f} KiB each ({memory['sessions']} open, no stream)")

    def best(rows: list[dict]) -> int:
        return max((r["sessions"] for r in rows if r["parley"]["p99_ms"] < LATENESS_LIMIT_MS), default=0)

    result = {"cores": os.cpu_count(), "seconds_per_step": SECONDS, "rounds": rounds, "stand_in": stand_ins,
              "overload": limited, "default": defaults, "idle_memory": memory,
              "max_sessions_p99_under_10ms": {"stand_in": best(stand_ins), "default": best(defaults)}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    RESULTS.with_suffix(".md").write_text(markdown(result))
    print(f"most sessions at p99 < {LATENESS_LIMIT_MS:g} ms: stand-ins {best(stand_ins)}, defaults {best(defaults)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per N; the median p99's run is reported")
    parser.add_argument("--overload", default="150:100", metavar="OFFERED:LIMIT",
                        help="callers offered to a server started with --max-streams LIMIT")
    args = parser.parse_args()
    offered, limit = (int(x) for x in args.overload.split(":"))
    asyncio.run(main(args.rounds, offered, limit))
