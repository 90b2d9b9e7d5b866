"""The key bad-input and auth rows through nginx: codes and rich details (grpc-status-details-bin) arrive intact.

Each row runs on a fresh session started through the proxy, every later call
with the session header; a control call streams the whole time on another
session and must not lose a frame.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from parley.fleet.routing import session_metadata
from parley.sessions.names import owner_replica
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2, session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, StreamClient, open_stream
from tests.fleet.support import STAND_IN_START, Fleet
from tests.reliability.support import Outcome, contiguous, outcome_of, stream_outcome

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789ab"
OK, INVALID, NOT_FOUND = grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
PRECONDITION, EXHAUSTED, ABORTED = (
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
)
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
BURST = 20


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Ctx:
    stub: pb_grpc.AgentSessionServiceStub
    session: str  # Alice's fresh session for this row

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        """Alice's token and the session header."""
        return bearer(ALICE) + session_metadata(self.session)


@dataclass(frozen=True)
class Row:
    id: str
    call: Callable[[Ctx], Awaitable[Outcome]]
    code: grpc.StatusCode
    field: str = ""
    reason: str = ""
    limit: str = ""
    message: str = ""


def start(**config: Any) -> Callable[[Ctx], Awaitable[Outcome]]:
    config.setdefault("providers", STAND_IN_PROVIDERS)
    return lambda c: outcome_of(c.stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(**config)),
                                             metadata=bearer(ALICE)))


def unary(method: str, request_type: Any, **fields: Any) -> Callable[[Ctx], Awaitable[Outcome]]:
    return lambda c: outcome_of(getattr(c.stub, method)(request_type(session=c.session, **fields), metadata=c.md))


def stream(*messages: Callable[[Ctx], pb.StreamAudioRequest]) -> Callable[[Ctx], Awaitable[Outcome]]:
    return lambda c: stream_outcome(c.stub, [m(c) for m in messages], metadata=c.md)


def cfg(c: Ctx) -> pb.StreamAudioRequest:
    return pb.StreamAudioRequest(config=pb.StreamConfig(session=c.session))


def chunk(pcm: bytes) -> Callable[[Ctx], pb.StreamAudioRequest]:
    return lambda c: pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(pcm=pcm))


async def after_close(c: Ctx, call: Callable[[Ctx], Awaitable[Outcome]]) -> Outcome:
    await c.stub.Close(pb.CloseRequest(session=c.session), metadata=c.md)
    return await call(c)


async def second_stream(c: Ctx) -> Outcome:
    first = await open_stream(c.stub, c.session, metadata=c.md)
    try:
        return await stream_outcome(c.stub, [cfg(c)], metadata=c.md)
    finally:
        await first.aclose()


async def burst(c: Ctx) -> Outcome:
    for _ in range(BURST + 5):
        outcome = await outcome_of(c.stub.Interrupt(pb.InterruptRequest(session=c.session), metadata=c.md))
        if outcome.code is not OK:
            return outcome
    return Outcome(OK)


def unknown_on_its_replica(c: Ctx) -> Awaitable[Outcome]:
    """A well-formed name of the same replica that nobody started."""
    name = f"sessions/{owner_replica(c.session)}-{'0' * 16}"
    return outcome_of(c.stub.Get(pb.GetRequest(session=name), metadata=bearer(ALICE) + session_metadata(name)))


ROWS = [
    Row("unknown interruption mode at Start", start(interruption=session_pb2.InterruptionConfig(mode=77)), INVALID,
        field="config.interruption.mode"),
    Row("unknown provider at Start",
        start(providers=session_pb2.ProvidersConfig(tts=session_pb2.ProviderSpec(name="x"))), INVALID,
        field="config.providers.tts.name"),
    Row("empty text", unary("Say", pb.SayRequest, text=""), INVALID, field="text"),
    Row("unknown busy_policy", unary("Reply", pb.ReplyRequest, busy_policy=42), INVALID, field="busy_policy"),
    Row("unknown utterance id", unary("WaitUtterance", pb.WaitUtteranceRequest, utterance_id="u999"), INVALID,
        field="utterance_id"),
    Row("unknown session of a known replica", unknown_on_its_replica, NOT_FOUND, reason="SESSION_NOT_FOUND"),
    Row("malformed session name", lambda c: outcome_of(c.stub.Get(
        pb.GetRequest(session="sessions/../x"), metadata=bearer(ALICE) + session_metadata("sessions/../x"))),
        INVALID, field="session"),
    Row("Say after Close", lambda c: after_close(c, unary("Say", pb.SayRequest, text="hi")), PRECONDITION,
        reason="SESSION_CLOSED"),
    Row("audio before config", stream(chunk(bytes(640))), INVALID, field="config"),
    Row("odd byte length PCM mid-stream", stream(cfg, chunk(bytes(640)), chunk(bytes(641))), INVALID,
        field="audio.pcm"),
    Row("chunk over max_message_bytes", stream(cfg, chunk(bytes(70_000))), EXHAUSTED, message="larger than max"),
    Row("second stream without take_over", second_stream, ABORTED, reason="STREAM_ATTACHED"),
    Row("requests over the per-session rate", burst, EXHAUSTED, limit="max_requests_per_second"),
    # authentication and tenants
    Row("Start without a token", lambda c: outcome_of(c.stub.Start(STAND_IN_START)), UNAUTHENTICATED,
        reason="BAD_TOKEN"),
    Row("wrong token on a session call", lambda c: outcome_of(c.stub.Get(
        pb.GetRequest(session=c.session), metadata=bearer("not-a-token-at-all-xx") + session_metadata(c.session))),
        UNAUTHENTICATED, reason="BAD_TOKEN"),
    Row("stream without a token", lambda c: stream_outcome(c.stub, [cfg(c)], metadata=session_metadata(c.session)),
        UNAUTHENTICATED, reason="BAD_TOKEN"),
    Row("another tenant's session", lambda c: outcome_of(c.stub.Get(
        pb.GetRequest(session=c.session), metadata=bearer(BOB) + session_metadata(c.session))), NOT_FOUND,
        reason="SESSION_NOT_FOUND"),
]


@dataclass
class Table:
    channel: grpc.aio.Channel  # to the proxy
    stub: pb_grpc.AgentSessionServiceStub
    control: StreamClient


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def table(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Table]:
    fleet = Fleet(Path(tmp_path_factory.mktemp("fleet")),
                  flags=("--max-message-bytes", "65536", "--max-requests-per-second", "5",
                         "--request-burst", str(BURST)),
                  env={"PARLEY_AUTH_TOKENS": json.dumps({ALICE: "alice", BOB: "bob"})})
    try:
        await fleet.start()
        async with grpc.aio.insecure_channel(fleet.address) as channel:
            stub = pb_grpc.AgentSessionServiceStub(channel)
            control = (await stub.Start(STAND_IN_START, metadata=bearer(ALICE))).session.name
            control_stream = await open_stream(stub, control, metadata=bearer(ALICE) + session_metadata(control))
            yield Table(channel, stub, control_stream)
            assert control_stream.error is None and contiguous(control_stream), "the control call lost frames"
            await control_stream.aclose()
    finally:
        await fleet.stop()


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
async def test_row_through_the_proxy(table: Table, row: Row) -> None:
    session = (await table.stub.Start(STAND_IN_START, metadata=bearer(ALICE))).session.name
    outcome = await row.call(Ctx(table.stub, session))
    assert outcome.code is row.code, outcome
    if row.field:
        assert outcome.fields == (row.field,), outcome
    if row.reason:
        assert outcome.reason == row.reason, outcome
    if row.limit:
        assert outcome.limit == row.limit, outcome
    if row.message:
        assert row.message in outcome.message, outcome
    if row.code in (INVALID, NOT_FOUND, PRECONDITION, ABORTED, UNAUTHENTICATED) or row.limit:
        assert outcome.reason, f"{row.id}: no ErrorInfo came through the proxy"
    health = await health_pb2_grpc.HealthStub(table.channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING  # open without a token, through the proxy
