"""The call recorder: two channels placed by session-clock position, bounded, written as it goes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from parley.audio.recording import CallRecorder
from parley.errors import InvalidArgument

CALLER_RATE, AGENT_RATE = 16000, 24000
AGENT_FRAME = AGENT_RATE // 50  # 20 ms


def read(path) -> tuple[np.ndarray, int]:  # type: ignore[no-untyped-def]
    data, rate = sf.read(path, dtype="int16", always_2d=True)
    return data, rate


def first_loud(x: np.ndarray) -> int:
    return int(np.flatnonzero(np.abs(x.astype(np.int32)) > 5000)[0])


@pytest.mark.parametrize("file_rate", [16000, 24000, 8000])
def test_clicks_land_where_the_session_clock_puts_them(tmp_path, file_rate):
    """A click the caller makes at 1.230 s and one the agent plays in frame 70 (1.400 s) appear there."""
    rec = CallRecorder(tmp_path, "call", caller_rate=CALLER_RATE, agent_rate=AGENT_RATE, sample_rate=file_rate)
    caller = np.zeros(3 * CALLER_RATE, np.int16)
    caller[int(1.23 * CALLER_RATE): int(1.23 * CALLER_RATE) + 16] = 30000
    sizes = iter(np.random.default_rng(1).integers(100, 900, 1000))  # caller chunks of any size
    at = 0
    for frame_index in range(150):
        agent = np.zeros(AGENT_FRAME, np.int16)
        if frame_index == 70:
            agent[:24] = 30000
        rec.agent_frame(agent, frame_index)
        while at < min((frame_index + 1) * CALLER_RATE // 50 + 2000, len(caller)):  # the caller runs a bit ahead
            n = int(next(sizes))
            rec.caller_audio(caller[at:at + n], at)
            at += n
    rec.close()
    data, rate = read(rec.path)
    assert rate == file_rate and data.shape == (3 * file_rate, 2)
    one_frame = file_rate // 50
    assert abs(first_loud(data[:, 0]) - round(1.23 * file_rate)) < one_frame  # left: the caller
    assert abs(first_loud(data[:, 1]) - round(1.40 * file_rate)) < one_frame  # right: the agent
    assert np.max(np.abs(data[: int(1.2 * file_rate), :].astype(np.int32))) < 2000  # nothing else


def test_same_rate_is_sample_exact_and_gaps_are_silence(tmp_path):
    rec = CallRecorder(tmp_path, "exact", caller_rate=16000, agent_rate=16000, sample_rate=16000)
    rng = np.random.default_rng(2)
    words = rng.integers(-20000, 20000, 8000, dtype=np.int16)
    frames = rng.integers(-20000, 20000, (100, 320), dtype=np.int16)
    for i, frame in enumerate(frames):
        rec.agent_frame(frame, i)
        for start in (3840, 24000):  # the caller at 0.24 .. 0.74 s, nothing (a gap), then at 1.5 .. 2 s
            if start <= i * 320 < start + len(words):
                rec.caller_audio(words[i * 320 - start:(i + 1) * 320 - start], i * 320)
    rec.close()
    data, _ = read(rec.path)
    assert np.array_equal(data[3840:11840, 0], words) and np.array_equal(data[24000:32000, 0], words)
    assert not data[:3840, 0].any() and not data[11840:24000, 0].any()
    assert np.array_equal(data[:32000, 1], frames.reshape(-1))


def test_the_file_is_readable_while_recording_and_memory_stays_bounded(tmp_path):
    rec = CallRecorder(tmp_path, "live", caller_rate=CALLER_RATE, agent_rate=AGENT_RATE,
                       max_lag_seconds=1.0, flush_seconds=0.5)
    tone = (8000 * np.sin(np.arange(AGENT_FRAME) * 2 * np.pi / 48)).astype(np.int16)
    for i in range(500):  # 10 s of agent audio and no caller at all (a silent line)
        rec.agent_frame(tone, i)
        assert rec.buffered_samples <= 16000 * 1.5  # never more than the lag plus a flush's worth
    data, _ = read(rec.path)  # mid-call: a valid WAV holding what was written so far
    assert data.shape[1] == 2 and 8.0 <= len(data) / 16000 <= 9.5
    assert not data[:, 0].any() and np.abs(data[:, 1]).max() > 6000
    rec.close()
    assert read(rec.path)[0].shape == (160000, 2)


def test_max_duration_bounds_the_file(tmp_path):
    rec = CallRecorder(tmp_path, "short", caller_rate=CALLER_RATE, agent_rate=AGENT_RATE, max_seconds=1.5)
    frame = np.full(AGENT_FRAME, 1000, np.int16)
    for i in range(200):  # 4 s
        rec.agent_frame(frame, i)
        rec.caller_audio(np.full(320, 1000, np.int16), i * 320)
    rec.close()
    data, _ = read(rec.path)
    assert len(data) == 24000 and rec.truncated and rec.duration_seconds == 1.5


def test_late_audio_is_dropped_and_counted_not_misplaced(tmp_path):
    rec = CallRecorder(tmp_path, "late", caller_rate=16000, agent_rate=16000, max_lag_seconds=0.5,
                       flush_seconds=0.1)
    for i in range(100):  # 2 s of agent frames, no caller audio: the caller channel is written as silence
        rec.agent_frame(np.zeros(320, np.int16), i)
    rec.caller_audio(np.full(16000, 9000, np.int16), 0)  # a second of caller audio for 0..1 s, too late
    rec.close()
    data, _ = read(rec.path)
    assert rec.late_samples == 16000 and not data[:16000, 0].any()


def test_delete_removes_the_file_and_ends_the_recording(tmp_path):
    rec = CallRecorder(tmp_path / "recordings", "gone", caller_rate=CALLER_RATE, agent_rate=AGENT_RATE)
    rec.agent_frame(np.zeros(AGENT_FRAME, np.int16), 0)
    assert rec.path.exists()
    rec.delete()
    rec.delete()
    assert not rec.path.exists() and rec.deleted
    rec.agent_frame(np.zeros(AGENT_FRAME, np.int16), 1)  # a frame after the end is ignored
    assert not rec.path.exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(InvalidArgument) as err:
        CallRecorder(tmp_path, "../escape", caller_rate=CALLER_RATE, agent_rate=AGENT_RATE)
    assert err.value.field == "name"
    rec = CallRecorder(tmp_path, "x", caller_rate=CALLER_RATE, agent_rate=AGENT_RATE)
    with pytest.raises(FileExistsError):  # never overwrites another recording
        CallRecorder(tmp_path, "x", caller_rate=CALLER_RATE, agent_rate=AGENT_RATE)
    rec.agent_frame(np.zeros(AGENT_FRAME, np.int16), 0)
    with pytest.raises(InvalidArgument):
        rec.agent_frame(np.zeros(AGENT_FRAME + 1, np.int16), 1)
    with pytest.raises(InvalidArgument):
        rec.caller_audio(np.zeros(10, np.int16), -5)
    rec.close()
