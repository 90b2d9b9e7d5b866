"""Engine figures: interrupt-to-silence latency and server-added turn latency.

The server runs as a subprocess on loopback; this process is the client.
Providers are the cheap deterministic stand-ins (tone TTS, scripted STT,
energy VAD, echo LLM) so the figures are the engine's, not the models'.
(Capacity is measured by bench_capacity.py, with every caller on its own
connection and audio both ways.)

Writes bench/results/engine.json and prints the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
from common import STAND_INS, free_port

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2, session_pb2

RESULTS = Path(__file__).parent / "results" / "engine.json"

async def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley.cli", "serve", "--port", str(port), "--drain-timeout", "0",
         "--max-sessions", "2000",
         "--log-level", "WARNING", "--allow-stand-in-providers", "--max-caller-requests-per-second", "0"],
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
    return proc, address


async def open_session(stub: pb_grpc.AgentSessionServiceStub) -> str:
    config = session_pb2.SessionConfig(providers=STAND_INS, output_format=audio_pb2.AudioFormat(sample_rate_hz=24000))
    return (await stub.Start(pb.StartRequest(config=config))).session.name


async def interrupt_latency(stub, rounds: int = 10) -> dict[str, float]:
    """Interrupt call sent -> first silent frame received, and speech frames after ClearAudio."""
    latencies, frames_after = [], []
    for _ in range(rounds):
        name = await open_session(stub)
        call = stub.StreamAudio()
        await call.write(pb.StreamAudioRequest(config=pb.StreamConfig(session=name)))
        text = "a sentence long enough to be cut in the middle"
        said = (await stub.Say(pb.SayRequest(session=name, text=text))).utterance
        sent_at: float | None = None
        loud_after_clear = 0
        cleared = False
        async for response in call:
            kind = response.WhichOneof("message")
            if kind == "event":
                event = response.event
                if event.WhichOneof("event") == "clear_audio":
                    cleared = True
                elif (event.WhichOneof("event") == "utterance_updated" and sent_at is None
                      and event.utterance_updated.utterance.state == session_pb2.UTTERANCE_STATE_SPEAKING):
                    await asyncio.sleep(0.3)
                    sent_at = time.monotonic()
                    pending = asyncio.ensure_future(stub.Interrupt(pb.InterruptRequest(session=name, fade_ms=20)))
                continue
            pcm = np.frombuffer(response.audio.pcm, dtype="<i2").astype(np.float64)
            loud = float(np.sqrt(np.mean(pcm**2))) > 50
            if cleared and loud:
                loud_after_clear += 1
            if sent_at is not None and not loud and response.audio.utterance_id != said.id:
                latencies.append((time.monotonic() - sent_at) * 1000)
                frames_after.append(loud_after_clear)
                break
        call.cancel()
        await pending
        await stub.Close(pb.CloseRequest(session=name))
    return {"interrupt_to_silence_ms_median": float(np.median(latencies)),
            "interrupt_to_silence_ms_max": float(np.max(latencies)),
            "speech_frames_after_clear_max": int(max(frames_after))}


async def turn_latency(stub, rounds: int = 8) -> dict[str, float]:
    """Server-added latency: user speech end -> first reply frame, minus endpointing and provider time."""
    added, e2e = [], []
    tone = (8000 * np.sin(2 * np.pi * 300 * np.arange(8000) / 16000)).astype("<i2")
    silence = np.zeros(320, dtype="<i2").tobytes()
    for _ in range(rounds):
        config = session_pb2.SessionConfig(
            providers=STAND_INS,
            turn_detection=session_pb2.TurnDetectionConfig(min_endpointing_delay_seconds=0.2,
                                                           max_endpointing_delay_seconds=0.2))
        name = (await stub.Start(pb.StartRequest(config=config))).session.name
        call = stub.StreamAudio()
        await call.write(pb.StreamAudioRequest(config=pb.StreamConfig(session=name)))

        async def feed(call: grpc.aio.StreamStreamCall) -> None:
            start = time.monotonic()
            chunks = [tone[i:i + 320].tobytes() for i in range(0, len(tone), 320)] + [silence] * 150
            for n, chunk in enumerate(chunks):
                await call.write(pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(pcm=chunk)))
                await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))

        feeder = asyncio.create_task(feed(call))
        async for response in call:
            if response.WhichOneof("message") == "event" and response.event.WhichOneof("event") == "metrics_updated":
                t = response.event.metrics_updated.turn
                e2e.append(t.e2e_latency_ms)
                added.append(t.e2e_latency_ms - t.end_of_turn_delay_ms - t.llm_ttft_ms - t.tts_ttfb_ms)
                break
        feeder.cancel()
        call.cancel()
        await stub.Close(pb.CloseRequest(session=name))
    return {"e2e_ms_median": float(np.median(e2e)), "server_added_ms_median": float(np.median(added)),
            "server_added_ms_max": float(np.max(added))}


async def main() -> None:
    proc, address = await start_server()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.AgentSessionServiceStub(channel)
            interrupt = await interrupt_latency(stub)
            turn = await turn_latency(stub)
    finally:
        proc.terminate()
        proc.wait(10)
    result = {"cores": os.cpu_count(), **interrupt, **turn}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"interrupt -> silence: median {interrupt['interrupt_to_silence_ms_median']:.1f} ms, "
          f"max {interrupt['interrupt_to_silence_ms_max']:.1f} ms; speech frames after ClearAudio: "
          f"{interrupt['speech_frames_after_clear_max']}")
    print(f"turn: e2e median {turn['e2e_ms_median']:.1f} ms; server-added beyond endpointing and providers: "
          f"median {turn['server_added_ms_median']:.1f} ms, max {turn['server_added_ms_max']:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
