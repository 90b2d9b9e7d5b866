"""Parley embedded in a Python program: the session engine in-process, no gRPC.

The same conversation as client.py: a WAV file is the caller's audio, fed in
real time; events are printed as they come; the agent's reply plays; a long
sentence is said and interrupted; the session closes; the agent's audio is
written to a WAV file.

    python examples/python/embed.py --wav examples/audio/question.wav --out reply.wav

The registry is the front door (start / get / list / close); a session is
steered with say / reply / interrupt, and an attached stream is the audio
path: push_audio() in, the stream's outbox out (frames and events in order).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import wave

import numpy as np

from parley.sessions.config import AudioFormat, SessionConfig
from parley.sessions.events import AgentStateChanged, SessionEvent, TranscriptEvent, UserStateChanged, UtteranceUpdated
from parley.sessions.registry import SessionRegistry
from parley.sessions.states import UtteranceSource, UtteranceState
from parley.sessions.stream import OutFrame, StreamSpec

CHUNK_MS = 20
LONG_TEXT = ("Let me tell you a long story about the sea, the wind, and a small boat that sailed "
             "from one harbour to the next for many, many years.")


def describe(event: SessionEvent) -> str:
    p = event.payload
    if isinstance(p, UtteranceUpdated):
        u = p.utterance
        detail = f"{u.id} {u.source.name.lower()} {u.state.name.lower()} {u.text!r}"
    elif isinstance(p, AgentStateChanged | UserStateChanged):
        detail = f"{p.old_state.name.lower()} -> {p.new_state.name.lower()}"
    elif isinstance(p, TranscriptEvent):
        detail = f"{'final' if p.is_final else 'interim'} {p.text!r}"
    else:
        detail = str(p)
    return f"event {event.sequence} {type(p).__name__} {detail}"


async def run(args: argparse.Namespace) -> int:
    with wave.open(args.wav, "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{args.wav}: need 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        rate, channels, pcm = w.getframerate(), w.getnchannels(), w.readframes(w.getnframes())

    registry = SessionRegistry()  # owns a provider thread pool; shutdown() releases everything
    try:
        session = await registry.start(SessionConfig(
            instructions="You are a helpful voice assistant. Answer in one sentence."))
        out_rate = session.config.output_format.sample_rate_hz
        print(f"started {session.name} (output {out_rate} Hz)", flush=True)
        stream = session.attach_stream(
            StreamSpec(input_rate=rate, input_channels=channels, output=AudioFormat(out_rate)), take_over=False)

        agent_audio = bytearray()
        reply_done = asyncio.get_running_loop().create_future()

        async def read() -> None:
            """Frames and events in order, until the session closes."""
            while (item := await stream.outbox.get()) is not None:
                if isinstance(item, OutFrame):
                    agent_audio.extend(item.pcm)
                    continue
                print(describe(item), flush=True)
                p = item.payload
                if (isinstance(p, UtteranceUpdated) and p.utterance.source is UtteranceSource.REPLY
                        and p.utterance.state.final and not reply_done.done()):
                    reply_done.set_result(p.utterance)

        async def feed() -> None:
            """The file in 20 ms chunks at real-time pace, then silence (the line stays open)."""
            step = rate * channels * 2 * CHUNK_MS // 1000
            start = time.monotonic()
            for n in range(10**9):
                chunk = pcm[n * step:(n + 1) * step] or bytes(step)
                session.push_audio(stream, chunk)
                await asyncio.sleep(max(0.0, start + (n + 1) * CHUNK_MS / 1000 - time.monotonic()))

        reader = asyncio.create_task(read())
        feeder = asyncio.create_task(feed())

        reply = await asyncio.wait_for(reply_done, args.timeout)
        print(f"reply {reply.state.name.lower()}: {reply.text!r}", flush=True)

        story = session.say(LONG_TEXT)
        while story.state is UtteranceState.QUEUED:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # let the caller hear the start of it
        cut = session.interrupt()
        heard = (await session.wait_utterance(story.id)).heard_text
        print(f"interrupted {[u.id for u in cut]}; heard {heard!r}", flush=True)

        feeder.cancel()
        closed = await registry.close(session.name, reason="example done")
        await reader  # the outbox ends after the SessionClosed event
        print(f"closed: {closed.snapshot().close_reason!r}", flush=True)
    finally:
        await registry.shutdown()
        registry.workers.close()

    with wave.open(args.out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(out_rate)
        w.writeframes(bytes(agent_audio))
    seconds = len(agent_audio) / 2 / out_rate
    peak = int(np.abs(np.frombuffer(bytes(agent_audio), dtype="<i2")).max(initial=0))
    print(f"wrote {args.out}: {seconds:.1f} s at {out_rate} Hz, peak {peak}", flush=True)
    return 0 if reply.state is UtteranceState.PLAYED else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wav", required=True, help="the caller's audio: a 16-bit PCM WAV, 8..48 kHz")
    parser.add_argument("--out", default="reply.wav", help="where to write the agent's audio")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the reply")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
