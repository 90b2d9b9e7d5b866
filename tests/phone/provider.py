"""A telephony provider's side of a bidirectional media stream, written from the providers' documentation.

It opens the WebSocket, says `connected` and `start` (stream and call ids, µ-law 8 kHz mono), sends the
caller's audio as base64 `media` messages (20 ms each, in real time), and plays what it receives the way a
provider does: `media` goes into a playout buffer drained at 8000 bytes a second; a `mark` is echoed once
the audio queued before it has played; `clear` empties the buffer and echoes the marks it dropped.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

FRAME_BYTES = 160  # 20 ms of 8 kHz G.711


@dataclass
class Received:
    """What the provider got from the bridge, in order."""

    kind: str  # "media", "mark" or "clear"
    payload: bytes = b""
    name: str = ""
    at: float = 0.0


@dataclass
class Provider:
    url: str
    stream_sid: str = "MZ00000000000000000000000000000001"
    call_sid: str = "CA00000000000000000000000000000001"
    account_sid: str = "AC00000000000000000000000000000001"
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    custom_parameters: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    played: bytearray = field(default_factory=bytearray)  # what the caller heard, in order
    close_code: int | None = None
    close_reason: str = ""
    ws: ClientConnection | None = None
    _sequence: int = 0
    _chunk: int = 0
    _buffer: bytearray = field(default_factory=bytearray)
    _marks: list[tuple[int, str]] = field(default_factory=list)  # (buffer position, name)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _started: float = 0.0

    async def open(self, *, start: bool = True) -> None:
        self.ws = await connect(self.url)
        self._started = time.monotonic()
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._play())]
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        if start:
            await self.send_start()

    async def send_start(self) -> None:
        await self.send({
            "event": "start", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
            "start": {
                "streamSid": self.stream_sid, "accountSid": self.account_sid, "callSid": self.call_sid,
                "tracks": ["inbound"], "customParameters": self.custom_parameters,
                "mediaFormat": {"encoding": self.encoding, "sampleRate": self.sample_rate, "channels": 1},
            },
        })

    async def send(self, message: dict[str, Any] | str) -> None:
        assert self.ws is not None
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def say(self, audio: bytes, speed: float = 1.0) -> None:
        """The caller's G.711 audio, 20 ms per media message, in real time (or `speed` times faster, as a
        provider catching up after a network stall sends it)."""
        start = time.monotonic()
        for i in range(0, len(audio), FRAME_BYTES):
            self._chunk += 1
            await self.send({
                "event": "media", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                "media": {"track": "inbound", "chunk": str(self._chunk),
                          "timestamp": str(int((time.monotonic() - self._started) * 1000)),
                          "payload": base64.b64encode(audio[i:i + FRAME_BYTES]).decode()},
            })
            await asyncio.sleep(max(0.0, start + (i + FRAME_BYTES) / 8000 / speed - time.monotonic()))

    async def hang_up(self) -> None:
        await self.send({"event": "stop", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                         "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kinds = [r.kind for r in self.received][-20:]
                raise AssertionError(f"timed out; last received: {kinds}, closed: {self.close_code}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    def of(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.kind == kind]

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    async def aclose(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the provider's side ---------------------------------------------------------------------

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for text in self.ws:
                message = json.loads(text)
                assert message["streamSid"] == self.stream_sid, message
                event = message["event"]
                if event == "media":
                    payload = base64.b64decode(message["media"]["payload"])
                    self.received.append(Received("media", payload=payload, at=time.monotonic()))
                    self._buffer += payload
                elif event == "mark":
                    self.received.append(Received("mark", name=message["mark"]["name"], at=time.monotonic()))
                    self._marks.append((len(self._buffer), message["mark"]["name"]))
                elif event == "clear":
                    self.received.append(Received("clear", at=time.monotonic()))
                    self._buffer.clear()
                    dropped, self._marks = self._marks, []
                    for _, name in dropped:
                        await self._echo_mark(name)
                else:
                    raise AssertionError(f"unexpected message {message}")
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self._changed.set()

    async def _play(self) -> None:
        """Drain the playout buffer in real time; echo each mark once what was queued before it played."""
        tick = time.monotonic()
        while True:
            tick += 0.02
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            frame = bytes(self._buffer[:FRAME_BYTES])
            del self._buffer[:FRAME_BYTES]
            self.played += frame
            self._marks = [(max(0, position - len(frame)), name) for position, name in self._marks]
            while self._marks and self._marks[0][0] == 0:
                await self._echo_mark(self._marks.pop(0)[1])

    async def _echo_mark(self, name: str) -> None:
        try:
            await self.send({"event": "mark", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
                             "mark": {"name": name}})
        except ConnectionClosed:
            pass
