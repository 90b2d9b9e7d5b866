"""An attached audio stream: what the session sends to it, bounded.

The session puts output frames and events into the stream's outbox; the
transport (the gRPC handler) takes them out in order. The outbox is bounded:
when the reader falls behind, the oldest frames are dropped and counted (a
late frame is worth nothing in real-time audio); events are never dropped,
and a reader that falls `event_limit` events behind is cut off.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from parley.audio.encodings import Encoding, codec_for
from parley.audio.pcm import StreamResampler
from parley.errors import Aborted, ParleyError, ResourceExhausted
from parley.sessions.config import AudioFormat
from parley.sessions.events import SessionEvent

SESSION_FRAME_MS = 20  # the session mixes one frame per 20 ms tick


class OutFrame(NamedTuple):
    """One frame for the stream (a named tuple: immutable, and the cheapest such object to make 50 times a second)."""

    pcm: bytes
    sequence: int
    timestamp_ms: int
    utterance_id: str


@dataclass(frozen=True)
class StreamSpec:
    input_rate: int
    input_channels: int
    output: AudioFormat
    lead_ms: int = 0
    input_encoding: Encoding = Encoding.LINEAR16


class Outbox:
    def __init__(self, frame_limit: int, event_limit: int = 1000) -> None:
        self._items: deque[OutFrame | SessionEvent] = deque()
        self._frames = 0
        self._events = 0
        self._frame_limit = frame_limit
        self._event_limit = event_limit
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None  # the reader, waiting for an item
        self._error: ParleyError | None = None
        self._ended = False
        self.dropped_total = 0

    def put_frame(self, frame: OutFrame) -> None:
        if self._ended:
            return
        if self._frames >= self._frame_limit:
            oldest = next(i for i, item in enumerate(self._items) if isinstance(item, OutFrame))
            del self._items[oldest]
            self._frames -= 1
            self.dropped_total += 1
        self._items.append(frame)
        self._frames += 1
        self._wake()

    def put_event(self, event: SessionEvent) -> None:
        if self._ended:
            return
        if self._events >= self._event_limit:
            self.fail(ResourceExhausted("stream_event_queue", "the stream reader fell too far behind"))
            return
        self._items.append(event)
        self._events += 1
        self._wake()

    def end(self) -> None:
        """No more items; the reader finishes what is queued."""
        self._ended = True
        self._wake()

    def fail(self, error: ParleyError) -> None:
        """End the stream with an error after nothing else."""
        self._error = error
        self._items.clear()
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> OutFrame | SessionEvent | None:
        """The next item; None when the stream ended; raises the error it failed with."""
        while not self._items:
            if self._error is not None:
                raise self._error
            if self._ended:
                return None
            self._waiter = self._loop.create_future()
            await self._waiter
        item = self._items.popleft()
        if isinstance(item, OutFrame):
            self._frames -= 1
        else:
            self._events -= 1
        return item


class FrameAdapter:
    """Turns the session's 20 ms mono frames into a stream's output format.

    When the stream takes the session's own format (the usual case) a frame
    passes through untouched: no resampling, no copy.

    Otherwise the output resampler (soxr) keeps its output aligned in time
    with its input but holds audio back (its filter delay, released in
    blocks), so an output frame is complete only some session frames after
    its audio was mixed. Output frame m holds exactly the audio of session
    frames m*k .. m*k+k-1 (k = frame_ms / 20): it carries their utterance
    tag, not that of the session frame that happened to complete it.
    """

    def __init__(self, session_rate: int, output: AudioFormat) -> None:
        self._output = output
        self._codec = codec_for(output.encoding)
        self._resampler = StreamResampler(session_rate, output.sample_rate_hz)
        self._samples_per_frame = output.sample_rate_hz * output.frame_ms // 1000
        self._session_frames_per_frame = output.frame_ms // SESSION_FRAME_MS
        self._buffer = np.zeros(0, dtype=np.int16)
        self._tags: deque[str] = deque()  # of session frames not yet sent, oldest first
        self.as_is = (session_rate == output.sample_rate_hz and output.channels == 1
                      and self._samples_per_frame == session_rate // 50 and output.encoding is Encoding.LINEAR16)

    def push(self, mono: np.ndarray, tag: str = "") -> tuple[bytes, str] | None:
        """Add one session frame and its utterance tag; returns (bytes, tag) of an output frame once complete."""
        if self.as_is:
            return mono.astype("<i2", copy=False).tobytes(), tag
        self._tags.append(tag)
        mono = self._resampler.process(mono)
        self._buffer = np.concatenate((self._buffer, mono)) if len(self._buffer) else mono
        if len(self._buffer) < self._samples_per_frame:
            return None
        out, self._buffer = self._buffer[: self._samples_per_frame], self._buffer[self._samples_per_frame:]
        if self._output.channels == 2:
            out = np.repeat(out, 2)
        tags = [self._tags.popleft() for _ in range(self._session_frames_per_frame)]
        return self._codec.encode(out), _dominant(tags)


def _dominant(tags: list[str]) -> str:
    """The utterance heard in most of the session frames (the earlier on a tie); "" when none is."""
    spoken = [t for t in tags if t]
    return max(spoken, key=spoken.count) if spoken else ""


class AttachedStream:
    """One client's audio stream on a session."""

    def __init__(self, spec: StreamSpec, session_rate: int, frame_limit: int, listen_rate: int) -> None:
        self.spec = spec
        self.outbox = Outbox(frame_limit)
        self.adapter = FrameAdapter(session_rate, spec.output)
        self.input_codec = codec_for(spec.input_encoding)  # the caller's wire bytes -> int16
        self._to_listener = (
            None if spec.input_rate == listen_rate else StreamResampler(spec.input_rate, listen_rate)
        )
        self.sequence = 0

    def to_listener(self, mono: np.ndarray) -> np.ndarray:
        """The caller's mono audio at the listener's rate (as is when it already is)."""
        return mono if self._to_listener is None else self._to_listener.process(mono)

    def take_over(self) -> None:
        self.outbox.fail(Aborted("another stream took over this session", reason="STREAM_TAKEN_OVER"))
