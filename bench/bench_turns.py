"""Turn latency with the default providers, measured as a caller hears it.

A `parley serve` subprocess runs the offline defaults (webrtc VAD, Whisper
STT, the local language model, espeak TTS). This process is the caller: it
streams spoken questions (espeak, in another voice than the agent's) in real
time, 20 ms chunks, and keeps the line open with silence. For each turn it
times, from the moment the chunk holding the last voiced sample of the
question was sent:

- vad: the user state going back to LISTENING (the VAD heard the end);
- stt: the final transcript arriving;
- turn end: the reply utterance being queued (endpointing done);
- first audio: the first audible frame of the reply arriving.

and it adds the model times the server reports (LLM first token, TTS first
byte). Then it plays a 150 ms noise burst over the agent's speech and times
the pause until the speech resumes. Writes bench/results/turns.json and
prints a table.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
from common import free_port

from parley.audio.pcm import resample
from parley.providers import registry
from parley.providers.workers import Workers
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2, events_pb2, session_pb2

RESULTS = Path(__file__).parent / "results" / "turns.json"
QUESTIONS = [
    "What is the weather like today?",
    "Can you tell me a joke?",
    "What time does the shop open?",
    "How far is the train station?",
    "Where can I park my car?",
    "What is your name?",
    "Do you sell fresh bread?",
    "How much does the ticket cost?",
    "Is the museum open on Sunday?",
    "Can I bring my dog inside?",
    "What should I cook for dinner?",
    "Who won the game last night?",
]
CALLER_VOICE = "en+f3"
AUDIBLE_RMS = 200.0


async def spoken(texts: list[str]) -> list[np.ndarray]:
    workers = Workers(2)
    try:
        tts = registry.build("tts", "espeak", {}, voice=CALLER_VOICE, workers=workers)
        out = []
        for text in texts:
            pcm = np.concatenate([c async for c in tts.synthesize(text)])
            out.append(resample(pcm, tts.sample_rate, 16000))
        return out
    finally:
        workers.close()


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0


class Caller:
    """One StreamAudio call: sends 20 ms chunks in real time, timestamps what comes back."""

    def __init__(self, stub: pb_grpc.AgentSessionServiceStub, name: str) -> None:
        self.call = stub.StreamAudio()
        self.name = name
        self.marks: dict[str, float] = {}
        self.turn: dict[str, float] = {}
        self.reply_id = ""
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.call.write(pb.StreamAudioRequest(config=pb.StreamConfig(
            session=self.name, input_format=audio_pb2.AudioFormat(sample_rate_hz=16000))))
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for response in self.call:
            now = time.monotonic()
            if response.WhichOneof("message") == "audio":
                a = response.audio
                if self.reply_id and a.utterance_id == self.reply_id and "first_audio" not in self.marks \
                        and rms(a.pcm) > AUDIBLE_RMS:
                    self.marks["first_audio"] = now
                continue
            event = response.event
            kind = event.WhichOneof("event")
            if kind == "user_state_changed":
                state = event.user_state_changed.new_state
                if state == session_pb2.USER_STATE_SPEAKING:
                    self.marks["speaking"] = now
                elif state == session_pb2.USER_STATE_LISTENING and "speaking" in self.marks:
                    self.marks.setdefault("vad", now)
            elif kind == "transcript" and event.transcript.is_final:
                self.marks.setdefault("stt", now)
            elif kind == "utterance_updated":
                u = event.utterance_updated.utterance
                if u.source == session_pb2.UTTERANCE_SOURCE_REPLY and u.state == session_pb2.UTTERANCE_STATE_QUEUED \
                        and not self.reply_id:
                    self.reply_id = u.id
                    self.marks["turn_end"] = now
                if u.id == self.reply_id and u.state in (session_pb2.UTTERANCE_STATE_PLAYED,
                                                         session_pb2.UTTERANCE_STATE_INTERRUPTED,
                                                         session_pb2.UTTERANCE_STATE_FAILED):
                    self.marks["done"] = now
            elif kind == "metrics_updated":
                t = event.metrics_updated.turn
                self.turn = {"llm_ttft_ms": t.llm_ttft_ms, "tts_ttfb_ms": t.tts_ttfb_ms,
                             "stt_latency_ms": t.stt_latency_ms, "end_of_turn_delay_ms": t.end_of_turn_delay_ms,
                             "server_e2e_ms": t.e2e_latency_ms}

    async def send(self, pcm: np.ndarray) -> float:
        """Send in real time; returns when the chunk holding the last voiced sample went out."""
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300)
        last_chunk = int(loud[-1]) // 320 if len(loud) else -1
        start, ended = time.monotonic(), 0.0
        for n, i in enumerate(range(0, len(pcm), 320)):
            await self.call.write(pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(
                pcm=pcm[i:i + 320].astype("<i2").tobytes())))
            if n == last_chunk:
                ended = time.monotonic()
            await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))
        return ended

    async def silence_until(self, done, timeout: float) -> None:
        silence = np.zeros(320, dtype=np.int16)
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            await self.send(silence)

    async def close(self) -> None:
        self.call.cancel()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


async def one_turn(stub: pb_grpc.AgentSessionServiceStub, question: np.ndarray) -> dict[str, float] | None:
    config = session_pb2.SessionConfig(instructions="You are a helpful voice assistant. Answer in one sentence.")
    name = (await stub.Start(pb.StartRequest(config=config))).session.name
    caller = Caller(stub, name)
    await caller.open()
    try:
        await caller.silence_until(lambda: False, 0.5)
        ended = await caller.send(question)
        await caller.silence_until(lambda: "done" in caller.marks, 30.0)
        if "first_audio" not in caller.marks:
            return None
        marks = ("vad", "stt", "turn_end", "first_audio")
        row: dict[str, float] = {key: (caller.marks[key] - ended) * 1000 for key in marks if key in caller.marks}
        return {**row, **caller.turn}
    finally:
        await caller.close()
        await stub.Close(pb.CloseRequest(session=name))


async def noise_pause(stub: pb_grpc.AgentSessionServiceStub) -> dict[str, float] | None:
    """A 150 ms noise burst over the agent: how long until its speech is audible again."""
    name = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig()))).session.name
    caller = Caller(stub, name)
    await caller.open()
    resumed: dict[str, float] = {}

    async def watch() -> None:
        events = stub.WatchEvents(pb.WatchEventsRequest(session=name))
        async for response in events:
            event = response.event
            if event.WhichOneof("event") == "interruption":
                resumed.setdefault(str(event.interruption.kind), time.monotonic())
            if len(resumed) >= 2:
                break

    watcher = asyncio.create_task(watch())
    try:
        await stub.Say(pb.SayRequest(session=name, text=" ".join(QUESTIONS)))
        await caller.silence_until(lambda: False, 1.5)
        noise = np.random.default_rng(3).normal(0, 6000, 2400).clip(-32768, 32767).astype(np.int16)
        ended = await caller.send(noise)
        await caller.silence_until(lambda: len(resumed) >= 2, 5.0)
        return {events_pb2.InterruptionKind.Name(int(k)).removeprefix("INTERRUPTION_KIND_").lower(): (t - ended) * 1000
                for k, t in resumed.items()}
    finally:
        watcher.cancel()
        await caller.close()
        await stub.Close(pb.CloseRequest(session=name))


async def main() -> None:
    questions = await spoken(QUESTIONS)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "parley.cli", "serve", "--port", str(port), "--drain-timeout", "0",
                             "--log-level", "WARNING"], stderr=subprocess.DEVNULL)
    rows: list[dict[str, float]] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 120)
            stub = pb_grpc.AgentSessionServiceStub(channel)
            await one_turn(stub, questions[0])  # the first call after start, measured like the rest below
            for text, question in zip(QUESTIONS, questions, strict=True):
                row = await one_turn(stub, question)
                print(f"  {text:40s} " + (" ".join(f"{k} {v:6.0f}" for k, v in row.items()) if row else "no reply"),
                      flush=True)
                if row:
                    rows.append(row)
            pauses = [p for p in [await noise_pause(stub) for _ in range(5)] if p]
            for p in pauses:
                print("  noise burst: " + ", ".join(f"{k} {v:.0f} ms" for k, v in p.items()), flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
    keys = ("vad", "stt", "turn_end", "llm_ttft_ms", "tts_ttfb_ms", "first_audio")
    summary = {key: {"median": float(np.median([r[key] for r in rows if key in r])),
                     "p90": float(np.percentile([r[key] for r in rows if key in r], 90))}
               for key in keys if any(key in r for r in rows)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    resumed = [p["resumed"] for p in pauses if "resumed" in p]
    RESULTS.write_text(json.dumps({"turns": rows, "summary": summary, "replied": len(rows),
                                   "asked": len(QUESTIONS), "noise_bursts": pauses}, indent=2))
    print(f"{len(rows)}/{len(QUESTIONS)} questions answered; ms after the caller's last voiced chunk was sent:")
    for key, value in summary.items():
        print(f"  {key:14s} median {value['median']:7.0f}   p90 {value['p90']:7.0f}")
    if resumed:
        print(f"150 ms noise burst over the agent: speech resumed {np.median(resumed):.0f} ms (median) after it "
              f"ended; {len(resumed)}/{len(pauses)} resumed, the rest were heard as words and cut")


if __name__ == "__main__":
    asyncio.run(main())
