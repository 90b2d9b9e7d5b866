"""Call recordings over the real server: the caller on the left, what they heard on the right, on one clock."""

from __future__ import annotations

import io
import json
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile

from parley.errors import NotFound
from parley.providers.workers import Workers
from parley.sessions.config import RecordingConfig, SessionConfig
from parley.sessions.limits import RegistryLimits, SessionLimits
from parley.sessions.registry import SessionRegistry
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_CHOICES, STAND_IN_PROVIDERS, open_stream
from tests.engine.test_speech import LONG_TEXT
from tests.helpers import error_details

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"
AS_ALICE = (("authorization", f"Bearer {ALICE}"),)
AS_BOB = (("authorization", f"Bearer {BOB}"),)
RATE = 16000  # the recording's rate
FRAME = 320  # 20 ms at 16 kHz
CLICK = np.full(80, 20000, np.int16)  # 5 ms


@pytest.fixture
def server_settings(server_settings: ServerSettings, tmp_path: Path) -> ServerSettings:
    return server_settings.replace(auth_tokens=json.dumps({ALICE: "alice", BOB: "bob"}),
                                   recording_dir=str(tmp_path / "recordings"), recording_ttl=600)


async def start_recorded(stub) -> str:
    config = session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS, auto_reply=False,
                                       recording=session_pb2.RecordingConfig(enabled=True))
    return (await stub.Start(pb.StartRequest(config=config), metadata=AS_ALICE)).session.name


async def fetch(stub, name: str, metadata=AS_ALICE, fmt=pb.RECORDING_FORMAT_WAV):
    info, data = None, b""
    async for response in stub.GetRecording(pb.GetRecordingRequest(session=name, format=fmt), metadata=metadata):
        if response.WhichOneof("message") == "info":
            info = response.info
        else:
            data += response.data
    return info, data


def first_loud(channel: np.ndarray, threshold: int, after: int = 0) -> int:
    loud = np.flatnonzero(np.abs(channel[after:].astype(np.int32)) > threshold)
    assert len(loud), "nothing loud in the channel"
    return after + int(loud[0])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


async def test_the_caller_and_what_they_heard_line_up_on_the_session_clock(stub) -> None:
    name = await start_recorded(stub)
    client = await open_stream(stub, name, metadata=AS_ALICE)
    await client.send_silence(0.5)
    said = (await stub.Say(pb.SayRequest(session=name, text="hello"), metadata=AS_ALICE)).utterance
    while not any(f.utterance_id == said.id for f in client.frames):  # the caller hears the agent begin...
        await client.send_silence(0.02)
    onset = next(f for f in client.frames if f.utterance_id == said.id)
    await client.send(np.concatenate([CLICK, np.zeros(FRAME - len(CLICK), np.int16)]))  # ...and clicks at once
    await client.send_silence(0.5)
    await client.aclose()
    await stub.Close(pb.CloseRequest(session=name), metadata=AS_ALICE)

    info, wav = await fetch(stub, name)
    assert info.complete and info.channels == 2 and info.sample_rate_hz == RATE and info.media_type == "audio/wav"
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="int16", always_2d=True)
    assert rate == RATE and audio.shape[1] == 2 and abs(len(audio) / RATE - info.duration_seconds) < 0.05
    heard_at = first_loud(audio[:, 1], 2000)  # the agent's tone begins (right)
    clicked_at = first_loud(audio[:, 0], 10000)  # the caller's click (left)
    # where the frames said the agent's audio began, on the session clock; and the click followed it
    assert abs(heard_at / RATE * 1000 - onset.timestamp_ms) <= 20
    # The click was sent as the caller heard that onset; a chunk is placed to end when it arrives (its audio
    # was captured before it was sent), so the click lands within a frame of the onset, either side.
    assert abs(clicked_at - heard_at) / RATE * 1000 <= 2 * 20


async def test_interrupted_speech_is_cut_in_the_agent_channel(stub) -> None:
    name = await start_recorded(stub)
    client = await open_stream(stub, name, metadata=AS_ALICE)
    said = (await stub.Say(pb.SayRequest(session=name, text=LONG_TEXT), metadata=AS_ALICE)).utterance
    while sum(f.utterance_id == said.id for f in client.frames) < 40:  # 0.8 s of speech heard
        await client.send_silence(0.02)
    await stub.Interrupt(pb.InterruptRequest(session=name, fade_ms=20), metadata=AS_ALICE)
    done = await wait_done_as(stub, name, said.id)
    await client.send_silence(0.6)
    last = [f for f in client.frames if f.utterance_id == said.id][-1]
    await client.aclose()

    info, wav = await fetch(stub, name)  # during the call: what was recorded so far
    assert not info.complete
    audio, _ = soundfile.read(io.BytesIO(wav), dtype="int16", always_2d=True)
    agent = audio[:, 1]
    cut = int((last.timestamp_ms + 20) / 1000 * RATE)
    assert rms(agent[cut - int(0.6 * RATE): cut - int(0.1 * RATE)]) > 1000  # speech up to the cut...
    assert rms(agent[cut + int(0.06 * RATE): cut + int(0.5 * RATE)]) < 30  # ...and nothing of the rest
    assert done.played_ms < len(LONG_TEXT) * 60 / 2
    await stub.Close(pb.CloseRequest(session=name), metadata=AS_ALICE)


async def test_a_recording_is_only_its_principals_and_only_when_asked_for(stub) -> None:
    name = await start_recorded(stub)
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await fetch(stub, name, metadata=AS_BOB)
    assert other.value.code() == grpc.StatusCode.NOT_FOUND
    plain = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)),
                              metadata=AS_ALICE)).session.name
    with pytest.raises(grpc.aio.AioRpcError) as off:
        await fetch(stub, plain)
    assert off.value.code() == grpc.StatusCode.FAILED_PRECONDITION and error_details(off.value)[1] == "NOT_RECORDED"
    client = await open_stream(stub, name, metadata=AS_ALICE)
    await client.send_silence(0.5)
    await client.aclose()
    await stub.Close(pb.CloseRequest(session=name), metadata=AS_ALICE)
    info, ogg = await fetch(stub, name, fmt=pb.RECORDING_FORMAT_OGG_OPUS)  # kept after Close, in Opus too
    assert info.media_type == "audio/ogg" and ogg[:4] == b"OggS"
    assert soundfile.info(io.BytesIO(ogg)).channels == 2


async def wait_done_as(stub, name: str, utterance_id: str) -> session_pb2.Utterance:
    return (await stub.WaitUtterance(pb.WaitUtteranceRequest(session=name, utterance_id=utterance_id),
                                     metadata=AS_ALICE, timeout=30)).utterance


async def test_a_recording_is_deleted_after_its_ttl_and_with_the_snapshot(tmp_path: Path) -> None:
    workers = Workers(1)
    limits = RegistryLimits(allow_stand_in_providers=True, recording_ttl=0, closed_session_retention=1,
                            session=SessionLimits(recording_dir=str(tmp_path)))
    registry = SessionRegistry(limits, workers=workers)
    config = SessionConfig(providers=STAND_IN_CHOICES,
                           recording=RecordingConfig(enabled=True))
    first = await registry.start(config)
    path = first.recording.path
    await registry.close(first.name)
    assert path.exists()  # kept after Close...
    await registry.reap(registry.clock.now())
    assert not path.exists()  # ...until its TTL
    with pytest.raises(NotFound):
        registry.recording(first.name)

    kept = await registry.start(config)
    path = kept.recording.path
    await registry.close(kept.name)
    await registry.close((await registry.start(config)).name)  # the oldest closed snapshot is forgotten
    assert not path.exists()
    await registry.shutdown()
    assert not list(tmp_path.iterdir())  # nothing outlives the server
    workers.close()
