"""A call recording: a stereo WAV, caller left, agent right, on the session clock.

The recorder is fed from two places that run at their own pace: the
caller's audio as it is heard (chunks at the listener's rate, each with its
position on the session clock) and the agent's output frames as they are
sent (what the caller heard, after mixing, with the session's frame index).
Both are placed by position, not by arrival, so the two channels line up to
the sample however the chunks interleave; a channel with nothing at some
position is silent there.

Memory stays bounded: samples are written once both channels have passed
them, or once the other channel lags more than `max_lag_seconds` (it is then
silent there, and audio that comes later for written positions is dropped
and counted in `late_samples`). The file is written incrementally with a
valid header after every write (at most every `flush_seconds`), so it can
be read while the call goes on. Nothing past `max_seconds` is recorded.

Each channel is converted to the file's rate with a streaming resampler
whose output stays aligned in time with its input; a jump in a channel's
positions (a gap, or a resumed stream) starts a new resampler segment at the
new position.

Not thread-safe; the writes are small sequential appends to one file.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from parley.audio.pcm import PcmLike, StreamResampler, as_int16
from parley.errors import InvalidArgument

CALLER, AGENT = 0, 1


class _Track:
    """One channel: its input rate, and where its resampled audio lands in the file."""

    def __init__(self, in_rate: int, file_rate: int) -> None:
        self.in_rate = in_rate
        self.file_rate = file_rate
        self.resampler: StreamResampler | None = None
        self.next_in = 0      # input position that continues the current segment
        self.segment_at = 0   # file position of the current segment's first sample
        self.produced = 0     # file samples the current segment has produced
        self.end = 0          # file position up to which this channel is known

    def feed(self, pcm: np.ndarray, position: int) -> list[tuple[int, np.ndarray]]:
        """Resample a chunk at input `position`; returns (file position, samples) pieces to place."""
        pieces = []
        if self.resampler is None or position != self.next_in:
            pieces += self.finish()
            self.resampler = StreamResampler(self.in_rate, self.file_rate)
            self.segment_at = position * self.file_rate // self.in_rate
            self.produced = 0
        out = self.resampler.process(pcm)
        pieces.append((self.segment_at + self.produced, out))
        self.produced += len(out)
        self.next_in = position + len(pcm)
        self.end = max(self.end, self.segment_at + self.produced)
        return pieces

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """Flush the current segment's held-back tail."""
        if self.resampler is None:
            return []
        out = self.resampler.process(np.zeros(0, np.int16), last=True)
        at = self.segment_at + self.produced
        self.produced += len(out)
        self.end = max(self.end, self.segment_at + self.produced)
        self.resampler = None
        return [(at, out)]


class CallRecorder:
    """Records one call into `directory/<name>.wav` (16-bit stereo at `sample_rate`)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str,
        *,
        caller_rate: int,
        agent_rate: int,
        sample_rate: int = 16000,
        max_seconds: float = 3600.0,
        max_lag_seconds: float = 1.0,
        flush_seconds: float = 0.5,
    ) -> None:
        if not name or os.sep in name or (os.altsep and os.altsep in name) or name in (".", ".."):
            raise InvalidArgument("name", f"must be a plain file name, got {name!r}")
        for field, rate in (("caller_rate", caller_rate), ("agent_rate", agent_rate), ("sample_rate", sample_rate)):
            if not 8000 <= rate <= 48000:
                raise InvalidArgument(field, f"must be 8000..48000 Hz, got {rate}")
        if not max_seconds > 0:
            raise InvalidArgument("max_seconds", f"must be positive, got {max_seconds}")
        self.path = Path(directory) / f"{name}.wav"
        self.sample_rate = sample_rate
        self.max_samples = int(max_seconds * sample_rate)
        self._max_lag = max(1, int(max_lag_seconds * sample_rate))
        self._flush_every = max(1, int(flush_seconds * sample_rate))
        self._tracks = (_Track(caller_rate, sample_rate), _Track(agent_rate, sample_rate))
        self._agent_frame: int | None = None  # samples per agent frame, fixed by the first frame
        self._pending = np.zeros((0, 2), np.int16)  # file samples from `written` on, not yet written
        self.written = 0
        self.late_samples = 0
        self.truncated = False
        self.closed = False
        self.deleted = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "xb")  # never overwrite another recording  # noqa: SIM115 - closed in close()
        self._wav = wave.open(self._file, "wb")
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)
        self._wav.writeframes(b"")  # a valid (empty) file from the start

    # -- input ------------------------------------------------------------------------------

    def caller_audio(self, pcm: PcmLike, position: int) -> None:
        """The caller's mono int16 audio at `caller_rate`, its first sample at `position`
        (in samples at that rate, on the session clock)."""
        if position < 0:
            raise InvalidArgument("position", f"must be >= 0, got {position}")
        self._add(CALLER, as_int16(pcm), position)

    def agent_frame(self, pcm: PcmLike, frame_index: int) -> None:
        """One mixed output frame (mono int16 at `agent_rate`): session frame `frame_index`,
        which plays at frame_index x frame length on the session clock."""
        samples = as_int16(pcm)
        if self._agent_frame is None:
            self._agent_frame = len(samples)
        if len(samples) != self._agent_frame or frame_index < 0:
            raise InvalidArgument("pcm", f"agent frames are {self._agent_frame} samples at index >= 0, "
                                         f"got {len(samples)} at {frame_index}")
        self._add(AGENT, samples, frame_index * self._agent_frame)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def buffered_samples(self) -> int:
        """File samples held in memory, waiting for the other channel (bounded by the lag and a flush)."""
        return len(self._pending)

    @property
    def duration_seconds(self) -> float:
        """What the file holds so far."""
        return self.written / self.sample_rate

    def close(self) -> None:
        """Write everything still pending (both resamplers' tails included) and close the file; idempotent."""
        if self.closed:
            return
        for channel, track in enumerate(self._tracks):
            for at, samples in track.finish():
                self._place(channel, at, samples)
        self._write_until(max(t.end for t in self._tracks))
        self._wav.close()
        self._file.close()
        self.closed = True

    def delete(self) -> None:
        """Stop recording and remove the file; idempotent."""
        if not self.closed:
            self._wav.close()
            self._file.close()
            self.closed = True
        self.path.unlink(missing_ok=True)
        self.deleted = True

    # -- internals ----------------------------------------------------------------------------

    def _add(self, channel: int, samples: np.ndarray, position: int) -> None:
        if self.closed or self.written >= self.max_samples or not len(samples):
            return
        for at, piece in self._tracks[channel].feed(samples, position):
            self._place(channel, at, piece)
        both = min(t.end for t in self._tracks)
        lagging = max(t.end for t in self._tracks) - self._max_lag
        ready = max(both, lagging)
        if ready - self.written >= self._flush_every or ready >= self.max_samples:
            self._write_until(ready)

    def _place(self, channel: int, at: int, samples: np.ndarray) -> None:
        """Put file samples at file position `at`; what is already written is late and dropped."""
        self._write_until(at - self._max_lag)  # the other channel lags too far: it is silent there
        end = min(at + len(samples), self.max_samples)
        if end < at + len(samples):
            self.truncated = True
        if at < self.written:
            self.late_samples += min(self.written, end) - at
            samples = samples[self.written - at:]
            at = self.written
        if end <= at:
            return
        start, stop = at - self.written, end - self.written
        if stop > len(self._pending):
            grown = np.zeros((stop, 2), np.int16)
            grown[: len(self._pending)] = self._pending
            self._pending = grown
        self._pending[start:stop, channel] = samples[: stop - start]

    def _write_until(self, position: int) -> None:
        """Append file samples up to `position` (silence where nothing was placed), a second at a time."""
        while (count := min(position, self.max_samples, self.written + self.sample_rate) - self.written) > 0:
            block = np.zeros((count, 2), np.int16)
            have = min(count, len(self._pending))
            block[:have] = self._pending[:have]
            self._pending = self._pending[have:]
            self._wav.writeframes(block.astype("<i2", copy=False).tobytes())  # also patches the header's sizes
            self.written += count
