"""A model process that crashes in the middle of a reply costs that reply only: the call goes on."""

from __future__ import annotations

import asyncio
import os
import signal

from parley.providers import registry
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, open_stream
from tests.reliability.support import ErrorLog, contiguous

PLAYED, FAILED = session_pb2.UTTERANCE_STATE_PLAYED, session_pb2.UTTERANCE_STATE_FAILED


def cpu_ticks(pid: int) -> int:
    fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


async def wait_until_busy(pid: int, idle: int) -> None:
    """Until the process has used CPU since `idle` (a bound on a hang, not a speed claim)."""
    for _ in range(3000):
        if cpu_ticks(pid) > idle + 2:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the model's process never started on the reply")


async def final(stub, session: str, utterance: str) -> session_pb2.Utterance:
    return (await stub.WaitUtterance(pb.WaitUtteranceRequest(session=session, utterance_id=utterance))).utterance


async def test_a_language_model_process_killed_mid_reply_fails_only_that_reply(server, stub) -> None:
    providers = session_pb2.ProvidersConfig()
    providers.CopyFrom(STAND_IN_PROVIDERS)
    providers.llm.name = "local"  # the real model, in its own process; the other stages stand-ins
    providers.llm.options.update({"max_tokens": 12, "seed": 5})
    config = session_pb2.SessionConfig(
        providers=providers,
        instructions="Answer the caller kindly and briefly, and mind the details. " * 120)  # a prompt that takes a while
    session = (await stub.Start(pb.StartRequest(config=config))).session.name
    stream = await open_stream(stub, session)
    workers = server.registry.workers
    model = registry.build("llm", "local", {}, workers=workers).shared_model().model  # the one the session uses
    pid = await model.start(workers)
    idle = cpu_ticks(pid)
    broken = (await stub.Reply(pb.ReplyRequest(session=session, user_text="Tell me about the sea."))).utterance.id
    await wait_until_busy(pid, idle)  # it is reading the prompt
    os.kill(pid, signal.SIGKILL)  # a crash in llama.cpp while it answers
    with ErrorLog():
        failed = await final(stub, session, broken)
    assert failed.state == FAILED and "process ended" in failed.error
    frames = len(stream.frames)
    said = await final(stub, session, (await stub.Say(pb.SayRequest(session=session, text="still here"))).utterance.id)
    again = (await stub.Reply(pb.ReplyRequest(session=session, user_text="Hello?"))).utterance.id
    answered = await final(stub, session, again)
    assert said.state == PLAYED and answered.state == PLAYED and answered.text.strip()
    assert await model.start(workers) not in (pid, os.getpid())  # the next answer came from a new process
    assert len(stream.frames) > frames and contiguous(stream)  # the call's audio never stopped
    await stream.aclose()
