"""Operator limits on callers: a request rate per caller over every call, and stand-in providers off by default."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from parley.server import ParleyServer
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS
from tests.reliability.support import Outcome, outcome_of

BURST = 8
ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789ab"
START = pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS))


@asynccontextmanager
async def running(settings: ServerSettings) -> AsyncIterator[tuple[ParleyServer, grpc.aio.Channel]]:
    server = ParleyServer(settings)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield server, channel
    finally:
        await server.stop()


@pytest.fixture
async def limited() -> AsyncIterator[tuple[ParleyServer, grpc.aio.Channel]]:
    """Callers may make BURST calls at once, then one every ten seconds; sessions themselves are unlimited."""
    settings = ServerSettings(port=0, log_level="WARNING", shutdown_grace=1.0, allow_stand_in_providers=True,
                              max_caller_requests_per_second=0.1, caller_request_burst=BURST,
                              max_requests_per_second=0, auth_tokens=json.dumps({ALICE: "alice", BOB: "bob"}))
    async with running(settings) as pair:
        yield pair


def as_caller(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def until_refused(calls: list[object]) -> tuple[int, Outcome]:
    """Await the calls in order; how many succeeded before the first failure, and that failure."""
    for n, call in enumerate(calls):
        outcome = await outcome_of(call)  # type: ignore[arg-type]
        if outcome.code is not grpc.StatusCode.OK:
            return n, outcome
    return len(calls), Outcome(grpc.StatusCode.OK)


async def test_churning_start_and_close_hits_the_per_caller_limit(limited) -> None:
    server, channel = limited
    stub = pb_grpc.AgentSessionServiceStub(channel)
    alice = as_caller(ALICE)
    calls = 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        while calls <= BURST:
            session = (await stub.Start(START, metadata=alice)).session.name
            calls += 1
            await stub.Close(pb.CloseRequest(session=session), metadata=alice)
            calls += 1
    assert calls == BURST and refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value
    trailing = dict(refused.value.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailing["grpc-status-details-bin"])
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert any(d.Unpack(info) for d in status.details if d.Is(info.DESCRIPTOR))
    assert info.reason == "LIMIT_EXCEEDED" and info.metadata["limit"] == "max_caller_requests_per_second"
    assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
    assert 0 < retry.retry_delay.ToTimedelta().total_seconds() <= 10

    # Get, List and another caller: Get and List count too, bob has a bucket of his own, health stays free
    assert (await outcome_of(stub.List(pb.ListRequest(), metadata=alice))).code is grpc.StatusCode.RESOURCE_EXHAUSTED
    bob = as_caller(BOB)
    served, refused = await until_refused([stub.List(pb.ListRequest(), metadata=bob) for _ in range(BURST + 2)])
    assert served == BURST and refused.limit == "max_caller_requests_per_second"
    for _ in range(3):
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_stand_in_providers_are_refused_unless_the_operator_allows_them() -> None:
    settings = ServerSettings(port=0, log_level="WARNING", shutdown_grace=1.0)
    async with running(settings) as (_, channel):
        stub = pb_grpc.AgentSessionServiceStub(channel)
        for stage in ("tts", "stt", "vad", "llm"):
            providers = session_pb2.ProvidersConfig()
            getattr(providers, stage).CopyFrom(getattr(STAND_IN_PROVIDERS, stage))
            outcome = await outcome_of(stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(
                providers=providers))))
            assert outcome.code is grpc.StatusCode.PERMISSION_DENIED, outcome
            assert outcome.reason == "STAND_IN_PROVIDERS_OFF", outcome
            assert f"config.providers.{stage}.name" in outcome.message
            assert "--allow-stand-in-providers" in outcome.message
        assert not (await stub.List(pb.ListRequest())).sessions  # nothing was started
