"""The baseline for the capacity benchmark: the bare transport doing a call's I/O.

A grpc.aio server with Parley's own StreamAudio method and messages, and
nothing behind them: for each 20 ms chunk of caller audio that comes in, one
20 ms frame of agent audio (24 kHz mono, 960 bytes) goes out, as an
AudioFrame with a sequence number and timestamp. What Parley costs beyond
this is what its engine costs.

With --clocked the echo is shaped like a server that speaks on its own
clock, as Parley must (its frames go out whether or not the caller talks):
a task per stream reads the caller's chunks, and Parley's own frame clock
and outbox send one frame per stream every 20 ms to the handler that writes
them. No session, mixer or listener stands behind it: what Parley costs
beyond this clocked echo is what its conversation costs, and what this costs
beyond the lockstep echo is the price of speaking on a clock.

    python bench/echo_server.py PORT [--clocked]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import grpc

from parley.api.converters import frame_to_proto
from parley.cancelling import cancel_and_wait
from parley.sessions.frame_clock import FrameClock
from parley.sessions.stream import Outbox, OutFrame
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2

FRAME = bytes(960)


class EchoServicer(pb_grpc.AgentSessionServiceServicer):
    async def StreamAudio(  # noqa: N802 - the contract's name
        self, requests: AsyncIterator[pb.StreamAudioRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamAudioResponse]:
        sequence = 0
        async for request in requests:
            if request.WhichOneof("message") != "audio":
                continue
            yield pb.StreamAudioResponse(audio=audio_pb2.AudioFrame(
                pcm=FRAME, sequence=sequence, timestamp_ms=sequence * 20, utterance_id=""))
            sequence += 1


class ClockedStream:
    """One stream's part on the frame clock: a frame into its outbox each tick."""

    def __init__(self) -> None:
        self.outbox = Outbox(frame_limit=50)
        self._sequence = 0

    def tick(self, frames: int) -> bool:
        for _ in range(frames):
            self.outbox.put_frame(OutFrame(FRAME, self._sequence, self._sequence * 20, ""))
            self._sequence += 1
        return True

    def underrun(self, frames: int) -> None:
        self._sequence += frames


class ClockedEchoServicer(pb_grpc.AgentSessionServiceServicer):
    def __init__(self) -> None:
        self._clock = FrameClock()

    async def StreamAudio(  # noqa: N802 - the contract's name
        self, requests: AsyncIterator[pb.StreamAudioRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamAudioResponse]:
        self._clock.start()
        await anext(aiter(requests), None)  # the stream's config
        stream = ClockedStream()
        reader = asyncio.create_task(self._read(requests))
        self._clock.add(stream)
        try:
            while (item := await stream.outbox.get()) is not None:
                assert isinstance(item, OutFrame)
                yield frame_to_proto(item)  # Parley's own conversion, as its StreamAudio makes it
        finally:
            self._clock.remove(stream)
            await cancel_and_wait([reader])

    @staticmethod
    async def _read(requests: AsyncIterator[pb.StreamAudioRequest]) -> None:
        async for request in requests:
            if request.WhichOneof("message") == "audio":
                _ = request.audio.pcm


async def main(port: int, clocked: bool) -> None:
    server = grpc.aio.server()
    servicer = ClockedEchoServicer() if clocked else EchoServicer()
    pb_grpc.add_AgentSessionServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--clocked", action="store_true", help="frames on a 20 ms clock, a reader task per stream")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.clocked))
