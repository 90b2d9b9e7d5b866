"""The baseline for the capacity benchmark: the bare transport doing a call's I/O.

A grpc.aio server with Parley's own StreamAudio method and messages, and
nothing behind them: for each 20 ms chunk of caller audio that comes in, one
20 ms frame of agent audio (24 kHz mono, 960 bytes) goes out, as an
AudioFrame with a sequence number and timestamp. What Parley costs beyond
this is what its engine costs.

    python bench/echo_server.py PORT
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import grpc

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


async def main(port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_AgentSessionServiceServicer_to_server(EchoServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
