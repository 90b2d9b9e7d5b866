"""`parley talk`: a spoken question in, a reply the default STT can transcribe out."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import grpc
import numpy as np
import soundfile

from parley.audio.pcm import resample
from parley.providers import registry
from parley.providers.workers import Workers
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.test_spoken_turn import spoken
from tests.examples.conftest import BIN, QUESTION, ROOT, TOKEN, event_lines, first, loudest_rms, read_wav, run

AUTH = (("authorization", f"Bearer {TOKEN}"),)


async def transcribe(pcm: np.ndarray, rate: int) -> str:
    """What the default STT hears in `pcm`."""
    workers = Workers(2)
    try:
        stt = registry.build("stt", "", {}, workers=workers)
        stream = stt.stream()
        await stream.push(resample(pcm, rate, stt.sample_rate))
        text = (await stream.finish()).text
        await stream.aclose()
        return text
    finally:
        workers.close()


async def test_talk_records_a_reply_the_stt_understands(address: str, tmp_path: Path) -> None:
    question = tmp_path / "question.wav"
    soundfile.write(question, await spoken("What is the capital of France?", rate=22050), 22050, subtype="PCM_16")
    out = tmp_path / "reply.wav"

    done = await asyncio.to_thread(run, [BIN / "parley", "talk", "--address", address, "--wav", question, "--out", out])

    lines = event_lines(done.stdout)
    assert first(lines, "transcript", r"final '.*France") < first(lines, "utterance_updated", r" reply played ")
    assert lines[-1].kind == "session_closed"
    assert "reply played" in done.stdout
    pcm, rate, channels = read_wav(out)
    assert (rate, channels) == (24000, 1)
    assert loudest_rms(pcm, rate) > 1000
    heard = await transcribe(pcm, rate)
    assert heard.strip(), "the default STT found no words in the recorded reply"


async def test_talk_into_an_existing_session_leaves_it_open(address: str, tmp_path: Path) -> None:
    """--session: talk joins a session someone else started and does not close it."""
    question = tmp_path / "question.wav"
    soundfile.write(question, await spoken("Hello there, how are you?"), 16000, subtype="PCM_16")
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        session = (await stub.Start(pb.StartRequest(), metadata=AUTH)).session
        done = await asyncio.to_thread(run, [BIN / "parley", "talk", "--address", address, "--session", session.name,
                                             "--wav", question, "--out", tmp_path / "reply.wav", "--rate", "16000"])
        after = (await stub.Get(pb.GetRequest(session=session.name), metadata=AUTH)).session
        assert "session_closed" not in done.stdout
        assert after.status == session_pb2.SESSION_STATUS_ACTIVE and after.chat_history[-1].content  # ACTIVE, with the reply in its context
        await stub.Close(pb.CloseRequest(session=session.name), metadata=AUTH)
    pcm, rate, _ = read_wav(tmp_path / "reply.wav")
    assert rate == 16000 and loudest_rms(pcm, rate) > 1000


def test_talk_without_the_token_is_refused(address: str, tmp_path: Path) -> None:
    env = {**os.environ, "PARLEY_TOKEN": ""}
    done = subprocess.run([str(BIN / "parley"), "talk", "--address", address, "--wav", str(QUESTION),
                           "--out", str(tmp_path / "never.wav")], capture_output=True, text=True, cwd=ROOT, env=env)
    assert done.returncode == 2
    assert "UNAUTHENTICATED" in done.stderr
    assert not (tmp_path / "never.wav").exists()
