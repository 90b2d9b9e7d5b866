"""`parley talk`: a spoken question in, a reply the default STT can transcribe out."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import signal
import subprocess
from importlib.metadata import version
from pathlib import Path

import grpc
import numpy as np
import soundfile

from parley.audio.pcm import resample
from parley.cli import build_parser
from parley.providers import registry
from parley.providers.workers import Workers
from parley.server import ParleyServer
from parley.settings import ServerSettings
from parley.talk import TalkOptions, talk
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, open_stream
from tests.engine.test_spoken_turn import spoken
from tests.examples.conftest import (
    BIN,
    QUESTION,
    ROOT,
    TOKEN,
    assert_readable,
    event_lines,
    first,
    loudest_rms,
    read_wav,
    run,
)
from tests.helpers import free_port

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
    await talk_conversation(address, tmp_path)


async def talk_conversation(address: str, tmp_path: Path) -> None:
    """`parley talk` against the server (or proxy) at `address`: a spoken question, a reply the STT hears."""
    question = tmp_path / "question.wav"
    soundfile.write(question, await spoken("What is the capital of France?", rate=22050), 22050, subtype="PCM_16")
    out = tmp_path / "reply.wav"

    done = await asyncio.to_thread(run, [BIN / "parley", "talk", "--wav", question, "--out", out],
                                   env={**os.environ, "PARLEY_ADDRESS": address})

    lines = event_lines(done.stdout)
    assert_readable(lines, {"agent_text", "metrics_updated"})
    assert first(lines, "transcript", r"final '.*France") < first(lines, "utterance_updated", r" reply played ")
    assert lines[-1].kind == "session_closed"
    assert "reply played" in done.stdout
    pcm, rate, channels = read_wav(out)
    assert (rate, channels) == (24000, 1)
    assert loudest_rms(pcm, rate) > 1000
    heard = await transcribe(pcm, rate)
    said = [line.detail for line in lines if line.kind == "agent_text"]
    assert heard.strip(), f"the default STT found no words in the recorded reply; the agent said {said}"


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


async def start_talk(address: str, tmp_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    """`parley talk` as a process, once it has started its session; the session's name."""
    proc = await asyncio.create_subprocess_exec(
        BIN / "parley", "talk", "--address", address, "--wav", QUESTION, "--out", tmp_path / "reply.wav",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PARLEY_TOKEN": TOKEN})
    assert proc.stdout is not None
    first_line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    match = re.match(r"session (sessions/\S+) ", first_line)
    assert match, first_line
    return proc, match.group(1)


async def closed_session(stub: pb_grpc.AgentSessionServiceStub, name: str) -> session_pb2.Session:
    session = (await stub.Get(pb.GetRequest(session=name), metadata=AUTH)).session
    assert session.status == session_pb2.SESSION_STATUS_CLOSED, session_pb2.SessionStatus.Name(session.status)
    return session


async def test_talk_closes_its_session_on_ctrl_c(address: str, tmp_path: Path) -> None:
    proc, name = await start_talk(address, tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    async with grpc.aio.insecure_channel(address) as channel:
        session = await closed_session(pb_grpc.AgentSessionServiceStub(channel), name)
    assert session.close_reason == "talk interrupted"


async def test_talk_closes_its_session_when_its_stream_fails(address: str, tmp_path: Path) -> None:
    """Another stream takes the session over: talk's stream ends ABORTED, talk exits 2 and closes the session."""
    proc, name = await start_talk(address, tmp_path)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        intruder = stub.StreamAudio(metadata=AUTH)
        await intruder.write(pb.StreamAudioRequest(config=pb.StreamConfig(session=name, take_over=True)))
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2, err
        # ABORTED is the server's status; grpcio's asyncio client reports INTERNAL "Internal error from Core"
        # instead when its next audio write races that status (grpc/grpc#36066), which a real-time writer can hit.
        assert b"ABORTED" in err or b"Internal error from Core" in err, err
        session = await closed_session(stub, name)
        assert session.close_reason == "talk failed"
        intruder.cancel()


async def test_talk_refused_at_max_streams_says_so(tmp_path: Path) -> None:
    """The server already carries its one stream: talk's stream is refused, and talk says why, every time.

    talk writes audio only once its stream has answered, so the refusal reaches it as RESOURCE_EXHAUSTED
    naming max_streams, never as the INTERNAL a racing write would turn it into.
    """
    settings = ServerSettings(host="127.0.0.1", port=0, log_level="WARNING", shutdown_grace=1.0,
                              allow_stand_in_providers=True, max_streams=1)
    server = ParleyServer(settings)
    await server.start()
    address = f"127.0.0.1:{server.port}"
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.AgentSessionServiceStub(channel)
            start = pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS))
            busy, waiting = [(await stub.Start(start)).session.name for _ in range(2)]
            call = await open_stream(stub, busy)
            for attempt in range(3):
                proc = await asyncio.create_subprocess_exec(
                    BIN / "parley", "talk", "--address", address, "--session", waiting, "--wav", QUESTION,
                    "--out", tmp_path / "never.wav", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                    cwd=ROOT, env={**os.environ, "PARLEY_TOKEN": ""})
                _, err = await asyncio.wait_for(proc.communicate(), 60)
                assert proc.returncode == 2 and b"RESOURCE_EXHAUSTED" in err and b"max_streams" in err, (attempt, err)
            assert len(call.frames) > 0 and call.error is None  # the admitted call went on meanwhile
            await call.aclose()
    finally:
        await server.stop()


def test_health_reads_the_address_from_the_environment(address: str) -> None:
    done = run([BIN / "parley", "health"], env={**os.environ, "PARLEY_ADDRESS": address})
    assert done.stdout.strip() == "SERVING"


def test_health_reports_errors_on_stderr() -> None:
    done = subprocess.run([str(BIN / "parley"), "health", "--address", f"127.0.0.1:{free_port()}", "--timeout", "2"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "UNAVAILABLE" in done.stderr


def test_version() -> None:
    done = run([BIN / "parley", "--version"])
    assert done.stdout.strip() == f"parley {version('parley')}"


def test_every_flag_of_talk_and_health_has_help() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("talk", "health"):
        flags = [a for a in commands.choices[name]._actions if a.option_strings]
        assert len(flags) > 2
        assert [a.option_strings for a in flags if not a.help] == [], name


class CtrlCOnEvent(io.StringIO):
    """`talk`'s event display, pressing Ctrl-C (cancelling the talk task) as the first of the stream's events is shown.

    The cancel lands on the next loop step, as the same event wakes the talk loop: the moment a Ctrl-C
    was lost in, when the loop's wait returned the event and dropped the cancellation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.task: asyncio.Task[int] | None = None
        self.pressed = False

    def write(self, text: str) -> int:
        if self.task is not None and not self.pressed and self.getvalue().startswith("session ") and text.strip():
            self.pressed = True
            asyncio.get_running_loop().call_soon(self.task.cancel)
        return super().write(text)


async def test_ctrl_c_as_an_event_arrives_still_ends_the_talk_and_closes_its_session(
        address: str, tmp_path: Path) -> None:
    shown = CtrlCOnEvent()
    options = TalkOptions(address=address, wav=str(QUESTION), out=str(tmp_path / "reply.wav"), token=TOKEN)
    shown.task = asyncio.create_task(talk(options, display_out=shown, display_err=io.StringIO()))
    try:
        await asyncio.wait_for(asyncio.shield(shown.task), 60)
    except asyncio.CancelledError:
        pass
    assert shown.pressed and shown.task.cancelled(), shown.getvalue()
    name = re.match(r"session (sessions/\S+) ", shown.getvalue()).group(1)
    async with grpc.aio.insecure_channel(address) as channel:
        session = await closed_session(pb_grpc.AgentSessionServiceStub(channel), name)
    assert session.close_reason == "talk interrupted"
