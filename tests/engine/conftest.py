"""Engine tests: a client that drives a real session over StreamAudio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest

from parley.sessions.config import ProviderChoice, ProvidersConfig
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import audio_pb2, events_pb2, session_pb2

# Stand-in providers (cheap and deterministic) isolate the engine in tests that
# are about timing and state, not about speech quality.
STAND_IN_PROVIDERS = session_pb2.ProvidersConfig(
    tts=session_pb2.ProviderSpec(name="tone"),
    stt=session_pb2.ProviderSpec(name="scripted"),
    vad=session_pb2.ProviderSpec(name="energy"),
    llm=session_pb2.ProviderSpec(name="echo"),
)
# The same stand-ins for sessions made in process, without gRPC.
STAND_IN_CHOICES = ProvidersConfig(tts=ProviderChoice("tone"), stt=ProviderChoice("scripted"),
                                   vad=ProviderChoice("energy"), llm=ProviderChoice("echo"))


@dataclass
class Frame:
    pcm: np.ndarray
    sequence: int
    utterance_id: str
    received: float
    timestamp_ms: int = 0


@dataclass
class StreamClient:
    """One client's StreamAudio call: sends audio, records every frame and event."""

    call: grpc.aio.StreamStreamCall
    frames: list[Frame] = field(default_factory=list)
    events: list[events_pb2.SessionEvent] = field(default_factory=list)
    items: list[str] = field(default_factory=list)  # "frame" / event kind, in arrival order
    error: grpc.aio.AioRpcError | None = None  # how the call ended, if not OK
    stopped_sending: bool = False  # `send` stops before its next chunk
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task | None = None

    async def _read(self) -> None:
        try:
            await self._read_all()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.error = exc
        finally:
            self._changed.set()

    async def _read_all(self) -> None:
        async for response in self.call:
            if response.WhichOneof("message") == "audio":
                a = response.audio
                pcm = np.frombuffer(a.pcm, dtype="<i2")
                self.frames.append(Frame(pcm, a.sequence, a.utterance_id, time.monotonic(), a.timestamp_ms))
                self.items.append("frame")
            else:
                self.events.append(response.event)
                self.items.append(response.event.WhichOneof("event"))
            self._changed.set()

    async def send(self, pcm: np.ndarray, *, rate: int = 16000, chunk_ms: int = 20, realtime: bool = True) -> None:
        """Send `pcm` in chunks, until it is all sent or `stopped_sending` (cancelling a write cancels the call)."""
        step = rate * chunk_ms // 1000
        start = time.monotonic()
        for n, i in enumerate(range(0, len(pcm), step)):
            if self.stopped_sending:
                return
            chunk = audio_pb2.AudioChunk(pcm=pcm[i:i + step].astype("<i2").tobytes())
            await self.call.write(pb.StreamAudioRequest(audio=chunk))
            if realtime:
                delay = start + (n + 1) * chunk_ms / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def send_raw(self, data: bytes) -> None:
        """One chunk of bytes in the stream's input format, as they are (G.711: one byte a sample)."""
        await self.call.write(pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(pcm=data)))

    async def send_silence(self, seconds: float, rate: int = 16000) -> None:
        await self.send(np.zeros(int(seconds * rate), dtype=np.int16), rate=rate)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; events so far: {[e.WhichOneof('event') for e in self.events]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    def of(self, kind: str) -> list:
        return [getattr(e, kind) for e in self.events if e.WhichOneof("event") == kind]

    def position_of(self, matches: Callable[[events_pb2.SessionEvent], bool]) -> int:
        """Arrival position (in `items`) of the first event that `matches`."""
        events = iter(self.events)
        for position, kind in enumerate(self.items):
            if kind != "frame" and matches(next(events)):
                return position
        raise AssertionError("no such event")

    def position_of_state(self, utterance_id: str, state: int) -> int:
        """Arrival position (in `items`) of the event that moved an utterance to `state`."""
        return self.position_of(lambda e: e.WhichOneof("event") == "utterance_updated"
                                and e.utterance_updated.utterance.id == utterance_id
                                and e.utterance_updated.utterance.state == state)

    def position_of_last_frame(self, utterance_id: str) -> int:
        """Arrival position (in `items`) of the last frame carrying the utterance's speech."""
        frames = iter(self.frames)
        last = -1
        for position, kind in enumerate(self.items):
            if kind == "frame" and next(frames).utterance_id == utterance_id:
                last = position
        return last

    def utterance_states(self, utterance_id: str) -> list[int]:
        return [u.utterance.state for u in self.of("utterance_updated") if u.utterance.id == utterance_id]

    async def aclose(self) -> None:
        self.call.cancel()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


async def open_stream(stub, session: str, *, input_rate: int = 16000, take_over: bool = False,
                      output: audio_pb2.AudioFormat | None = None, attached: bool = True,
                      input_format: audio_pb2.AudioFormat | None = None,
                      metadata: tuple[tuple[str, str], ...] = ()) -> StreamClient:
    """Open StreamAudio; with `attached`, return once the first frame arrived (the stream is bound).

    `input_format` replaces the default (LINEAR16 at `input_rate`); `metadata` goes on the call."""
    call = stub.StreamAudio(metadata=metadata)
    config = pb.StreamConfig(session=session, take_over=take_over,
                             input_format=input_format or audio_pb2.AudioFormat(sample_rate_hz=input_rate))
    if output is not None:
        config.output_format.CopyFrom(output)
    await call.write(pb.StreamAudioRequest(config=config))
    client = StreamClient(call)
    client._reader = asyncio.create_task(client._read())
    if attached:
        await client.wait_for(lambda: client.frames)
    return client


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


@pytest.fixture
async def start_session(stub):
    async def start(**config) -> session_pb2.Session:
        config.setdefault("providers", STAND_IN_PROVIDERS)
        return (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(**config)))).session
    return start
