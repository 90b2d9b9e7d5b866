"""The capacity benchmark's load: N callers, each on its own connection, audio both ways every 20 ms.

Each caller opens its own channel (its own TCP connection: a local
subchannel pool, as separate client processes would have), starts a
session, attaches StreamAudio (16 kHz mono in, 24 kHz mono out, 20 ms
frames) and sends 20 ms of audio every 20 ms: speech-like bursts (tones the
stand-in VAD hears as a voice, or real espeak speech for the default
providers) and silence between them, so the VAD, the recognizer and barge-in
all work. The backend side keeps the agent talking: a long Say, said again
whenever it ends; every third session plays background audio. Against the
bare echo (bench/echo_server.py) only the audio I/O runs.

Every call about a session carries its name in the `x-parley-session`
header, so the same load runs through a proxy in front of several
processes (bench/bench_scale.py).

A caller whose stream the server refuses (past its max_streams) closes its
session, as a backend would, and counts as refused; one whose Start no
worker takes (UNAVAILABLE from the proxy: every worker full) has no call
and counts as refused at Start; lateness is that of the admitted calls.
Frame lateness = arrival - (t0 + i x 20 ms) for frame i,
the first second skipped, where t0 is the earliest that schedule allows
(the smallest arrival - i x 20 ms seen): a late first frame hides nothing. Final
transcript = its event's arrival - the moment the chunk holding the
stretch's last voiced sample was sent, once per stretch: how long the
recognizer makes a caller wait as callers add up. Say -> first
frame is timed only for a Say made while the agent was idle or listening
(not one queued behind the session's own speech) and the caller silent,
and not if the caller starts talking before it is heard (speech waits for
the caller): for the Says made in the measuring window, and apart from
them for the burst of N Says made at once as the load starts (whether one
session waits behind all the others), where the utterance's create_time
(the server's clock, on the same host) also splits the burst's time in
two: the Says reaching their sessions, and each one's first frame after
that (what synthesis, shared among the sessions, adds). Events received
while measuring are counted by kind, per session and second: the stream
carries them beside the frames, and the echo carries none. The client runs on
uvloop, so that its own work takes as little as it can of the cores it
shares with the server. Prints one JSON object on stdout.

    python bench/capacity_load.py --target 127.0.0.1:50051 --sessions 50 --seconds 10 [--echo] [--default-providers]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import grpc
import numpy as np
import uvloop
from common import MEASURING, STAND_INS

from parley.fleet.routing import session_metadata
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2, session_pb2

CHUNK = 320  # 20 ms at 16 kHz
WARM_UP_FRAMES = 50
SAY = ("Thank you for calling. Your order has shipped and should arrive on Thursday; "
       "is there anything else I can help you with today?")
VOICE_EVERY_S = 6.0  # one stretch of caller speech every six seconds


async def caller_voice(default_providers: bool) -> np.ndarray:
    """One stretch of the caller's voice at 16 kHz."""
    if not default_providers:
        t = np.arange(int(1.2 * 16000)) / 16000
        return (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    from parley.audio.pcm import resample
    from parley.providers import registry
    from parley.providers.workers import Workers

    workers = Workers(1)
    try:
        tts = registry.build("tts", "espeak", {}, voice="en+f3", workers=workers)
        pcm = np.concatenate([c async for c in tts.synthesize("Could you tell me when the store opens?")])
        return resample(pcm, tts.sample_rate, 16000)
    finally:
        workers.close()


async def caller_cycle(default_providers: bool) -> tuple[np.ndarray, list[bytes]]:
    """One VOICE_EVERY_S cycle of the caller's audio (a stretch of voice, then silence) and its 20 ms chunks."""
    voice = await caller_voice(default_providers)
    cycle = np.zeros(int(VOICE_EVERY_S * 16000), dtype=np.int16)
    cycle[: len(voice)] = voice[: len(cycle)]
    return cycle, [cycle[i:i + CHUNK].astype("<i2").tobytes() for i in range(0, len(cycle), CHUNK)]


class SaidAt(NamedTuple):
    sent: float  # the Say call made (wall clock, seconds)
    received: float  # the session created the utterance (the server's wall clock, the same host's)
    burst: bool  # made with every other caller's at once


@dataclass
class Caller:
    index: int
    channel: grpc.aio.Channel
    stub: pb_grpc.AgentSessionServiceStub
    audio: list[bytes]  # the caller's 20 ms chunks over one VOICE_EVERY_S cycle
    offset: int
    name: str = ""
    call: grpc.aio.StreamStreamCall | None = None
    offsets: list[float] = field(default_factory=list)  # arrival - i x 20 ms, after the warm-up
    agent_state: int = session_pb2.AGENT_STATE_IDLE
    caller_speaking: bool = False  # the server's user state: speech waits for the caller to finish
    frames: int = 0
    speech_frames: int = 0
    gaps: int = 0
    dropped_reported: int = 0
    events: Counter[str] = field(default_factory=Counter)  # events received while measuring, by kind
    say_latency: list[float] = field(default_factory=list)  # Says made while measuring
    burst_latency: list[float] = field(default_factory=list)  # the Say made with every other caller's at once
    burst_received: list[float] = field(default_factory=list)  # that Say's call -> its session has it
    burst_after_receipt: list[float] = field(default_factory=list)  # its session has it -> its first frame
    voice_ends: int = 0  # stretches of speech whose last voiced chunk was sent while measuring
    voice_end_sent: float | None = None  # when the current stretch's last voiced chunk went out
    transcript_latency: list[float] = field(default_factory=list)
    said_at: dict[str, SaidAt] = field(default_factory=dict)  # utterance -> when it was said
    refused: bool = False  # the server carried its max_streams: this caller hung up
    start_refused: bool = False  # no worker took the Start (behind a proxy, every one full): no call at all
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # the stream's first message, or its end
    errors: list[str] = field(default_factory=list)

    def lateness(self) -> list[float]:
        best = min(self.offsets, default=0.0)
        return [(offset - best) * 1000 for offset in self.offsets]

    @property
    def route(self) -> tuple[tuple[str, str], ...]:
        """The header a proxy routes the session's calls by (none for the bare echo)."""
        return session_metadata(self.name)

    def position(self, tick: int) -> int:
        """Which chunk of the cycle goes out at `tick`."""
        return (tick + self.offset) % len(self.audio)


async def start_caller(caller: Caller, echo: bool, default_providers: bool) -> None:
    config = pb.StreamConfig(input_format=audio_pb2.AudioFormat(sample_rate_hz=16000),
                             output_format=audio_pb2.AudioFormat(sample_rate_hz=24000))
    if not echo:
        session_config = session_pb2.SessionConfig(
            providers=None if default_providers else STAND_INS,
            instructions="You are a helpful voice assistant. Answer in one short sentence.")
        try:
            caller.name = (await caller.stub.Start(pb.StartRequest(config=session_config))).session.name
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            caller.start_refused = True
            return
        config.session = caller.name
        if caller.index % 3 == 0:
            await caller.stub.PlayBackgroundAudio(pb.PlayBackgroundAudioRequest(session=caller.name),
                                                  metadata=caller.route)
    else:
        caller.answered.set()  # the lockstep echo answers audio only: nothing to wait for
    caller.call = caller.stub.StreamAudio(metadata=caller.route)
    await caller.call.write(pb.StreamAudioRequest(config=config))


async def say(caller: Caller, stop: asyncio.Event, measuring: asyncio.Event, burst: bool = False) -> None:
    if stop.is_set() or caller.refused:
        return
    idle = caller.agent_state in (session_pb2.AGENT_STATE_IDLE, session_pb2.AGENT_STATE_LISTENING) \
        and not caller.caller_speaking
    timed = idle and (burst or measuring.is_set())
    sent = time.time()
    try:
        said = (await caller.stub.Say(pb.SayRequest(session=caller.name, text=SAY), metadata=caller.route)).utterance
    except grpc.aio.AioRpcError as exc:
        if not (stop.is_set() or caller.refused):
            caller.errors.append(f"Say: {exc.code().name}")
        return
    if timed:
        caller.said_at[said.id] = SaidAt(sent, said.create_time.ToNanoseconds() / 1e9, burst)



async def read(caller: Caller, stop: asyncio.Event, measuring: asyncio.Event) -> None:
    assert caller.call is not None
    n = 0
    last_sequence = -1
    try:
        async for response in caller.call:
            now = time.monotonic()
            caller.answered.set()
            if response.WhichOneof("message") == "audio":
                frame = response.audio
                if last_sequence >= 0 and frame.sequence != last_sequence + 1:
                    caller.gaps += frame.sequence - last_sequence - 1
                last_sequence = frame.sequence
                n = frame.sequence  # a dropped frame's slot still counts on the schedule
                if n >= WARM_UP_FRAMES and not stop.is_set():
                    caller.offsets.append(now - n * 0.02)
                caller.frames += 1
                if frame.utterance_id:
                    caller.speech_frames += 1
                    said = caller.said_at.pop(frame.utterance_id, None)
                    if said is not None:
                        heard = time.time()  # the wall clock, as the server's create_time
                        if not said.burst:
                            caller.say_latency.append((heard - said.sent) * 1000)
                        else:
                            caller.burst_latency.append((heard - said.sent) * 1000)
                            caller.burst_received.append((said.received - said.sent) * 1000)
                            caller.burst_after_receipt.append((heard - said.received) * 1000)
                continue
            event = response.event
            kind = event.WhichOneof("event")
            if measuring.is_set() and not stop.is_set():
                caller.events[kind] += 1
            if kind == "agent_state_changed":
                caller.agent_state = event.agent_state_changed.new_state
            elif kind == "user_state_changed":
                caller.caller_speaking = event.user_state_changed.new_state == session_pb2.USER_STATE_SPEAKING
                if caller.caller_speaking:
                    caller.said_at.clear()  # speech that waits for the caller to finish is not the TTS's latency
            elif kind == "transcript" and event.transcript.is_final and caller.voice_end_sent is not None:
                if not stop.is_set():
                    caller.transcript_latency.append((now - caller.voice_end_sent) * 1000)
                caller.voice_end_sent = None
            elif kind == "frames_dropped":
                caller.dropped_reported += event.frames_dropped.count
            elif kind == "utterance_updated" and not stop.is_set():
                u = event.utterance_updated.utterance
                if u.source == session_pb2.UTTERANCE_SOURCE_SAY and u.state in (
                        session_pb2.UTTERANCE_STATE_PLAYED, session_pb2.UTTERANCE_STATE_INTERRUPTED):
                    loop = asyncio.get_running_loop()
                    loop.call_later(0.3, lambda: asyncio.ensure_future(say(caller, stop, measuring)))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and caller.frames == 0:
            caller.refused = True  # no room for this call: hang up, as a backend would (or try elsewhere)
            await caller.stub.Close(pb.CloseRequest(session=caller.name), metadata=caller.route)
        elif exc.code() != grpc.StatusCode.CANCELLED:
            caller.errors.append(f"{exc.code().name}: {exc.details()}")
    finally:
        caller.answered.set()


async def send(caller: Caller, stop: asyncio.Event, last_voiced: int, measuring: asyncio.Event) -> None:
    """The caller's audio: a 20 ms chunk on an absolute 20 ms schedule, once the stream answered.

    A refused stream then ends with its own status: a write racing it would turn that status into
    INTERNAL in grpcio's asyncio client.
    """
    assert caller.call is not None
    await caller.answered.wait()
    start = time.monotonic()
    tick = 0
    while not stop.is_set():
        position = caller.position(tick)
        try:
            await caller.call.write(pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(pcm=caller.audio[position])))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return  # the call ended: its status, read by `read`, says why
        if position == last_voiced and measuring.is_set():
            caller.voice_end_sent = time.monotonic()
            caller.voice_ends += 1
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * 0.02 - time.monotonic()))


async def run(args: argparse.Namespace) -> dict[str, object]:
    cycle, chunks = await caller_cycle(args.default_providers)
    last_voiced = max(i for i in range(len(chunks)) if np.abs(cycle[i * CHUNK:(i + 1) * CHUNK]).max() > 500)
    rng = random.Random(args.sessions)
    callers = []
    for i in range(args.sessions):
        channel = grpc.aio.insecure_channel(args.target, options=[("grpc.use_local_subchannel_pool", 1)])
        callers.append(Caller(i, channel, pb_grpc.AgentSessionServiceStub(channel), chunks,
                              rng.randrange(len(chunks))))
    await asyncio.gather(*(c.channel.channel_ready() for c in callers))
    for caller in callers:
        await start_caller(caller, args.echo, args.default_providers)
    placed = [c for c in callers if not c.start_refused]
    stop, measuring = asyncio.Event(), asyncio.Event()
    readers = [asyncio.create_task(read(c, stop, measuring)) for c in placed]
    senders = [asyncio.create_task(send(c, stop, last_voiced, measuring)) for c in placed]
    if not args.echo:
        await asyncio.gather(*(say(c, stop, measuring, burst=True) for c in placed))
    print(MEASURING, flush=True)
    measuring.set()
    began = time.monotonic()
    await asyncio.sleep(args.seconds)
    stop.set()
    measured = time.monotonic() - began
    await asyncio.gather(*senders)
    for caller in placed:
        assert caller.call is not None
        caller.call.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    if not args.echo:
        await asyncio.gather(*(c.stub.Close(pb.CloseRequest(session=c.name), metadata=c.route)
                               for c in placed if not c.refused), return_exceptions=True)
    await asyncio.gather(*(c.channel.close() for c in callers))
    lateness = np.array([x for c in callers for x in c.lateness()] or [0.0])
    say_latency = [x for c in callers for x in c.say_latency]
    burst_latency = [x for c in callers for x in c.burst_latency]
    burst_received = [x for c in callers for x in c.burst_received]
    burst_after_receipt = [x for c in callers for x in c.burst_after_receipt]
    transcript_latency = [x for c in callers for x in c.transcript_latency]
    voice_ends = sum(c.voice_ends for c in callers)
    frames = sum(c.frames for c in callers)
    return {
        "sessions": args.sessions, "seconds": measured, "frames": frames,
        "p50_ms": float(np.percentile(lateness, 50)), "p99_ms": float(np.percentile(lateness, 99)),
        "max_ms": float(lateness.max()),
        "frames_dropped": sum(c.gaps for c in callers), "drops_reported": sum(c.dropped_reported for c in callers),
        "streams_refused": sum(c.refused for c in callers),
        "starts_refused": sum(c.start_refused for c in callers),
        "speaking_share": sum(c.speech_frames for c in callers) / max(1, frames),
        "say_to_first_frame_ms_p50": percentile(say_latency, 50),
        "say_to_first_frame_ms_p99": percentile(say_latency, 99),
        "burst_say_to_first_frame_ms_p50": percentile(burst_latency, 50),
        "burst_say_to_first_frame_ms_max": max(burst_latency, default=None),
        "burst_say_received_ms_p50": percentile(burst_received, 50),
        "burst_say_received_ms_max": max(burst_received, default=None),
        "burst_received_to_first_frame_ms_p50": percentile(burst_after_receipt, 50),
        "burst_received_to_first_frame_ms_max": max(burst_after_receipt, default=None),
        "final_transcript_ms_p50": percentile(transcript_latency, 50),
        "final_transcript_ms_p99": percentile(transcript_latency, 99),
        "transcribed_share": len(transcript_latency) / voice_ends if voice_ends else None,
        "events_per_session_second": {kind: count / measured / max(1, len(placed)) for kind, count in sorted(
            sum((c.events for c in callers), Counter()).items())},
        "errors": sorted({e for c in callers for e in c.errors})[:5],
    }


def percentile(values: list[float], q: int) -> float | None:
    """The q-th percentile of `values`; None when there are none."""
    return float(np.percentile(values, q)) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port of the server")
    parser.add_argument("--sessions", type=int, required=True, help="callers, each on its own connection")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to measure")
    parser.add_argument("--echo", action="store_true", help="the target is the bare echo: audio I/O only")
    parser.add_argument("--default-providers", action="store_true", help="real speech and the default providers")
    # uvloop: the callers stand for clients on other machines, so the less CPU they take from the
    # server's cores (and the less lateness of their own they add), the truer the server's figures
    print(json.dumps(uvloop.run(run(parser.parse_args()))), file=sys.stdout, flush=True)


if __name__ == "__main__":
    main()
