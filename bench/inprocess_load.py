"""The capacity load's conversation without gRPC: where the engine's own CPU goes.

N sessions on the stand-in providers in this process, each with a stream
attached (16 kHz in, 24 kHz out): every 20 ms each session gets a chunk of
the same caller audio as bench/capacity_load.py sends (a 1.2 s voice every
6 s, so the VAD, the recognizer and barge-in act), a reader drains its
outbox, and a Say is made again 0.3 s after the last one ends; background
audio plays on every third session. Prints the process's CPU over the
window and per session-frame. Not a benchmark step of its own (the capacity
benchmark measures calls over gRPC): run it under a profiler to see the
engine's share of a call apart from the transport's, e.g.

    py-spy record -r 250 -f raw -o engine.txt -- python bench/inprocess_load.py --sessions 100
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from capacity_load import SAY, caller_cycle
from common import STAND_IN_CHOICES

from parley.providers.workers import Workers
from parley.server import prepare_heap_for_serving
from parley.sessions.config import AudioFormat, SessionConfig
from parley.sessions.events import UtteranceUpdated
from parley.sessions.limits import RegistryLimits
from parley.sessions.registry import SessionRegistry
from parley.sessions.session import Session
from parley.sessions.states import UtteranceSource, UtteranceState
from parley.sessions.stream import AttachedStream, OutFrame, StreamSpec

SAY_AGAIN_AFTER_S = 0.3  # as the capacity load does once an utterance ends
WARM_UP_S = 2.0


class Call:
    """One session, its stream, and where in the caller's audio cycle it starts."""

    def __init__(self, session: Session, stream: AttachedStream, offset: int) -> None:
        self.session = session
        self.stream = stream
        self.offset = offset
        self.frames = 0

    async def read(self, stop: asyncio.Event) -> None:
        """Drain the outbox as a transport would; say again once a Say has ended."""
        loop = asyncio.get_running_loop()
        while (item := await self.stream.outbox.get()) is not None:
            if isinstance(item, OutFrame):
                self.frames += 1
                continue
            payload = item.payload
            if (isinstance(payload, UtteranceUpdated) and payload.utterance.source is UtteranceSource.SAY
                    and payload.utterance.state in (UtteranceState.PLAYED, UtteranceState.INTERRUPTED)):
                loop.call_later(SAY_AGAIN_AFTER_S, self.say, stop)

    def say(self, stop: asyncio.Event) -> None:
        if not stop.is_set():
            self.session.say(SAY)

    async def send(self, chunks: list[bytes], stop: asyncio.Event) -> None:
        """A chunk every 20 ms on an absolute schedule."""
        start, tick = time.monotonic(), 0
        while not stop.is_set():
            self.session.push_audio(self.stream, chunks[(tick + self.offset) % len(chunks)])
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * 0.02 - time.monotonic()))


async def run(sessions: int, seconds: float) -> None:
    registry = SessionRegistry(RegistryLimits(allow_stand_in_providers=True, max_sessions=sessions,
                                              max_sessions_per_principal=sessions, max_streams=sessions),
                               workers=Workers())
    _, chunks = await caller_cycle(default_providers=False)
    rng = random.Random(sessions)
    prepare_heap_for_serving()  # as the server does before it serves
    calls = []
    for index in range(sessions):
        session = await registry.start(SessionConfig(providers=STAND_IN_CHOICES))
        stream = session.attach_stream(StreamSpec(16000, 1, AudioFormat(24000)), take_over=False)
        if index % 3 == 0:
            await session.play_background(None, override_thinking=False)
        calls.append(Call(session, stream, rng.randrange(len(chunks))))
    stop = asyncio.Event()
    readers = [asyncio.create_task(call.read(stop)) for call in calls]
    senders = [asyncio.create_task(call.send(chunks, stop)) for call in calls]
    for call in calls:
        call.say(stop)
    await asyncio.sleep(WARM_UP_S)
    cpu, frames, began = time.process_time(), sum(c.frames for c in calls), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, frames = time.process_time() - cpu, sum(c.frames for c in calls) - frames
    wall = time.monotonic() - began
    stop.set()
    await asyncio.gather(*senders)
    await registry.shutdown()
    await asyncio.gather(*readers)
    registry.workers.close()
    print(f"{sessions} sessions: {cpu / wall * 100:.1f} % of a core, {frames / wall:.0f} frames/s, "
          f"{cpu / max(1, frames) * 1e6:.1f} us per session-frame")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to measure, after a warm-up")
    args = parser.parse_args()
    asyncio.run(run(args.sessions, args.seconds))


if __name__ == "__main__":
    main()
