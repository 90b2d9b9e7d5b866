"""A session's audio port: the attached stream, caller audio in, mixed frames out.

In: each chunk of the caller's audio is checked, made mono at the
listener's rate (with no work when it already is) and fed to the listener.
Out: on each frame-clock tick the mixer mixes one frame, the stream's format
adapter turns it into the stream's output, and the frame goes into the
stream's bounded outbox; then the speaker accounts for what was played, so a
PLAYED event always follows the utterance's last frame on the stream.

The port is ticked by the process's frame clock only while it has work: a
stream attached, speech to play, or a layer sounding. From attach until the
caller is gone for good (detached with no reattach window, or the session
closed) it holds one of the process's stream slots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from parley.audio.encodings import check_encoding
from parley.audio.mixer import Mixer
from parley.errors import Aborted, InvalidArgument
from parley.sessions.clock import Clock, Timer
from parley.sessions.frame_clock import FrameClock
from parley.sessions.listener import Listener
from parley.sessions.stream import AttachedStream, OutFrame, StreamSpec
from parley.sessions.stream_slots import StreamSlots

INPUT_RATES = range(8000, 48001)
DROP_REPORT_FRAMES = 50  # while a reader is stuck, its drops are reported once a second


@dataclass(frozen=True)
class PortLimits:
    max_chunk_bytes: int
    stream_frame_buffer: int


class AudioTap(Protocol):
    """Sees the call's audio as it goes (the session's recording)."""

    def caller(self, mono: np.ndarray) -> None:
        """A chunk of the caller's audio at the listener's rate, as it arrives."""

    def agent(self, frame: np.ndarray) -> None:
        """A mixed frame at the session's rate, as it is sent to the caller."""


class PortEvents(Protocol):
    """What the port tells the rest of the session."""

    def frame_mixed(self) -> None:
        """A frame went out (the speaker accounts for it)."""

    def has_speech(self) -> bool:
        """Whether speech is queued or playing."""
        ...

    def stream_attached(self, stream: AttachedStream) -> None: ...

    def stream_detached(self, stream: AttachedStream) -> None: ...

    def stream_abandoned(self) -> None:
        """The stream did not come back within the reattach window."""

    def frames_dropped(self, count: int, total: int, announce: int) -> None:
        """A stuck reader lost `count` more frames (`total` so far); `announce` > 0: tell the clients so many."""

    def underrun(self, frames: int) -> None: ...


class AudioPort:
    def __init__(
        self, mixer: Mixer, frame_clock: FrameClock, clock: Clock, limits: PortLimits, events: PortEvents,
        make_listener: Callable[[], Listener], *, reattach_window: float, slots: StreamSlots | None = None,
        on_user_audio: Callable[[np.ndarray], np.ndarray | None] | None = None,
        on_agent_audio: Callable[[np.ndarray], np.ndarray | None] | None = None, tap: AudioTap | None = None,
    ) -> None:
        self._tap = tap
        self._mixer = mixer
        self._frame_clock = frame_clock
        self._clock = clock
        self._limits = limits
        self._events = events
        self._make_listener = make_listener
        self._reattach_window = reattach_window
        self._slots = slots or StreamSlots()
        self._holds_slot = False  # from attach until detached for good (no reattach window) or closed
        self._on_user_audio = on_user_audio
        self._on_agent_audio = on_agent_audio
        self._started = clock.now()
        self.stream: AttachedStream | None = None
        self.listener: Listener | None = None
        self._reattach_timer: Timer | None = None
        self._drop_report_in = 0
        self._unannounced = 0
        self._closed = False

    # -- the stream -------------------------------------------------------------------

    def attach(self, spec: StreamSpec, output_rate: int, *, take_over: bool) -> AttachedStream:
        if spec.input_rate not in INPUT_RATES:
            raise InvalidArgument("config.input_format.sample_rate_hz", f"must be 8000..48000, got {spec.input_rate}")
        if spec.input_channels not in (1, 2):
            raise InvalidArgument("config.input_format.channels", f"must be 1 or 2, got {spec.input_channels}")
        check_encoding(spec.input_encoding, spec.input_rate, spec.input_channels, "config.input_format")
        if not 0 <= spec.lead_ms <= 500:
            raise InvalidArgument("config.lead_ms", f"must be 0..500, got {spec.lead_ms}")
        if self.stream is not None and not take_over:
            raise Aborted("the session already has an audio stream; set take_over to replace it",
                          reason="STREAM_ATTACHED")
        if self.listener is None:
            self.listener = self._make_listener()
        stream = AttachedStream(spec, output_rate, self._limits.stream_frame_buffer, self.listener.sample_rate)
        if not self._holds_slot:
            self._slots.take()
            self._holds_slot = True
        if self.stream is not None:
            old, self.stream = self.stream, None
            self._events.stream_detached(old)
            old.take_over()
        self.stream = stream
        self._cancel_reattach()
        self._events.stream_attached(stream)
        self.wake()
        if spec.lead_ms:
            self.tick(spec.lead_ms // self._mixer.frame_ms)  # the stream runs that far ahead of real time
        return stream

    def detach(self, stream: AttachedStream) -> None:
        if self.stream is not stream:
            return
        self.stream = None
        self._events.stream_detached(stream)
        if self._reattach_window > 0 and not self._closed:
            self._reattach_timer = self._clock.call_later(self._reattach_window, self._events.stream_abandoned)
        else:
            self._give_back_slot()

    def push(self, stream: AttachedStream, pcm: bytes) -> None:
        """The caller's audio in the stream's input format."""
        if stream is not self.stream:
            return
        if len(pcm) == 0 or len(pcm) > self._limits.max_chunk_bytes:
            raise InvalidArgument(
                "audio.pcm", f"must be 1..{self._limits.max_chunk_bytes} bytes (max_chunk_bytes), got {len(pcm)}"
            )
        channels = stream.spec.input_channels
        samples = stream.input_codec.decode(pcm, channels, "audio.pcm")
        if channels == 2:
            samples = samples.reshape(-1, 2).mean(axis=1).astype(np.int16)
        mono = stream.to_listener(samples)
        if self._tap is not None:
            self._tap.caller(mono)
        if self._on_user_audio is not None:
            replaced = self._on_user_audio(mono)
            mono = mono if replaced is None else replaced
        if self.listener is not None and len(mono):
            self.listener.feed(mono)

    # -- the clock ----------------------------------------------------------------------

    def wake(self) -> None:
        """Work may have appeared: be ticked from the next frame on."""
        if not self._closed and self.has_work():
            self._frame_clock.add(self)

    def has_work(self) -> bool:
        return (
            self.stream is not None or self._events.has_speech() or self._mixer.speech_queued_samples > 0
            or self._mixer.layer_playing("background") or self._mixer.layer_playing("thinking")
        )

    def tick(self, frames: int) -> bool:
        """Mix `frames` frames, send them, account for them; whether there is more work."""
        for _ in range(frames):
            mixed = self._mixer.mix_frame()
            stream = self.stream
            if stream is not None or self._on_agent_audio is not None:
                self._send(mixed.pcm, mixed.tag, stream)
            self._events.frame_mixed()
        return not self._closed and self.has_work()

    def underrun(self, frames: int) -> None:
        self._events.underrun(frames)

    def close(self) -> None:
        self._closed = True
        self._cancel_reattach()
        self._frame_clock.remove(self)
        self._give_back_slot()
        if self.stream is not None:
            self.stream.outbox.end()
            self.stream = None

    # -- internals ------------------------------------------------------------------------

    def _send(self, pcm: bytes, tag: object, stream: AttachedStream | None) -> None:
        out, utterance_id = pcm, str(tag) if tag is not None else ""
        tapped = self._tap is not None and stream is not None
        if self._on_agent_audio is not None or stream is None or not stream.adapter.as_is or tapped:
            frame = np.frombuffer(pcm, dtype=np.int16)
            if self._on_agent_audio is not None:
                replaced = self._on_agent_audio(frame)
                frame = frame if replaced is None else replaced
            if stream is None:
                return
            if self._tap is not None:
                self._tap.agent(frame)
            adapted = stream.adapter.push(frame, utterance_id)
            if adapted is None:
                return
            out, utterance_id = adapted
        outbox = stream.outbox
        before = outbox.dropped_total
        outbox.put_frame(OutFrame(out, stream.sequence, int((self._clock.now() - self._started) * 1000),
                                  utterance_id))
        stream.sequence += 1
        dropped = outbox.dropped_total - before
        if dropped:
            self._unannounced += dropped
            self._drop_report_in -= 1
            announce = 0
            if self._drop_report_in <= 0:
                announce, self._unannounced, self._drop_report_in = self._unannounced, 0, DROP_REPORT_FRAMES
            self._events.frames_dropped(dropped, outbox.dropped_total, announce)
        elif self._unannounced or self._drop_report_in:  # the reader caught up: announce the rest now
            announce, self._unannounced, self._drop_report_in = self._unannounced, 0, 0
            if announce:
                self._events.frames_dropped(0, outbox.dropped_total, announce)

    def _give_back_slot(self) -> None:
        if self._holds_slot:
            self._holds_slot = False
            self._slots.give_back()

    def _cancel_reattach(self) -> None:
        if self._reattach_timer is not None:
            self._reattach_timer.cancel()
            self._reattach_timer = None
