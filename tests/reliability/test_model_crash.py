"""A model process that crashes in the middle of a reply costs that reply only: the call goes on."""

from __future__ import annotations

import os
import signal

from bench.common import cpu_seconds
from parley.providers import registry
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, open_stream
from tests.helpers import eventually
from tests.reliability.support import ErrorLog, contiguous, final

PLAYED, FAILED = session_pb2.UTTERANCE_STATE_PLAYED, session_pb2.UTTERANCE_STATE_FAILED


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
    idle = cpu_seconds(pid)
    broken = (await stub.Reply(pb.ReplyRequest(session=session, user_text="Tell me about the sea."))).utterance.id
    await eventually(lambda: cpu_seconds(pid) > idle + 0.02, 30, "the model's process at work on the reply")  # reading the prompt
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
