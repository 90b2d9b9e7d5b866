"""A session's recording: what the caller said (left) and heard (right), on the session clock.

The audio port hands over each chunk of the caller's audio as it arrives
and each frame it sends; this places both on the session clock (seconds
since the session started) and feeds the call recorder
(`parley.audio.recording`), which writes the stereo WAV as it goes. A stream
that keeps its pace is placed sample after sample (no jitter from arrival
times); a stream that comes back after a gap is placed anew from the clock.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from parley.audio.recording import CallRecorder
from parley.sessions.clock import Clock

DEFAULT_DIRECTORY = Path(tempfile.gettempdir()) / "parley-recordings"
RECORDING_RATE = 16000
FRAME_SECONDS = 0.02
REANCHOR_SECONDS = 0.1  # a stream this far off its own pace is placed anew from the clock
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RecordingInfo:
    media_type: str
    sample_rate_hz: int
    channels: int
    duration_seconds: float
    complete: bool
    truncated: bool


class SessionRecording:
    def __init__(
        self, directory: str, name: str, clock: Clock, *, caller_rate: int, agent_rate: int, max_seconds: float,
    ) -> None:
        """`directory` "": DEFAULT_DIRECTORY; `name`: the file's name (without .wav)."""
        self._clock = clock
        self._started = clock.now()
        self._caller_rate = caller_rate
        self._recorder = CallRecorder(directory or DEFAULT_DIRECTORY, name, caller_rate=caller_rate,
                                      agent_rate=agent_rate,
                                      sample_rate=RECORDING_RATE, max_seconds=max_seconds)
        self._caller_next: int | None = None  # where the caller's next sample goes, in caller samples
        self._agent_next: int | None = None  # the next agent frame's index

    @property
    def path(self) -> Path:
        return self._recorder.path

    def caller(self, mono: np.ndarray) -> None:
        """A chunk of the caller's audio that just arrived (it ends now)."""
        arrived = int((self._clock.now() - self._started) * self._caller_rate) - len(mono)
        if self._caller_next is None or abs(arrived - self._caller_next) > REANCHOR_SECONDS * self._caller_rate:
            self._caller_next = max(0, arrived)
        self._recorder.caller_audio(mono, self._caller_next)
        self._caller_next += len(mono)

    def agent(self, frame: np.ndarray) -> None:
        """A frame that was just sent to the caller."""
        index = round((self._clock.now() - self._started) / FRAME_SECONDS)
        if self._agent_next is None or abs(index - self._agent_next) > REANCHOR_SECONDS / FRAME_SECONDS:
            self._agent_next = max(0, index)
        self._recorder.agent_frame(frame, self._agent_next)
        self._agent_next += 1

    def close(self) -> None:
        """The call ended: write what is pending and close the file (it stays until deleted)."""
        self._recorder.close()

    def delete(self) -> None:
        self._recorder.delete()

    @property
    def deleted(self) -> bool:
        return self._recorder.deleted

    def info(self, media_type: str = "audio/wav") -> RecordingInfo:
        return RecordingInfo(media_type, RECORDING_RATE, 2, self._recorder.duration_seconds,
                             self._recorder.closed, self._recorder.truncated)

    async def wav_chunks(self) -> AsyncIterator[bytes]:
        """The file as written so far (its header is valid after every write), read off the event loop."""
        with open(self.path, "rb") as file:
            while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
                yield chunk

    async def ogg_opus(self) -> bytes:
        """The recording so far, encoded as Ogg Opus (off the event loop)."""
        return await asyncio.to_thread(_to_ogg_opus, self.path)


def _to_ogg_opus(path: Path) -> bytes:
    audio, rate = soundfile.read(path, dtype="int16", always_2d=True)
    out = io.BytesIO()
    soundfile.write(out, audio, rate, format="OGG", subtype="OPUS")
    return out.getvalue()
