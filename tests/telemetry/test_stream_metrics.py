"""The streams a server carries and refuses (max_streams), as a collector receives them over OTLP."""

from __future__ import annotations

import grpc
import pytest

from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, open_stream
from tests.telemetry.receiver import Receiver


@pytest.fixture
def server_settings(server_settings: ServerSettings) -> ServerSettings:
    return server_settings.replace(max_streams=1)


def latest(receiver: Receiver, name: str) -> int | None:
    points = receiver.metric_points(name)
    return points[-1].as_int if points else None


async def test_streams_carried_and_refused_reach_the_collector(stub, receiver: Receiver) -> None:
    start = pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS))
    admitted, turned_away = [(await stub.Start(start)).session.name for _ in range(2)]
    call = await open_stream(stub, admitted)
    knocking = await open_stream(stub, turned_away, attached=False)
    await knocking.wait_for(lambda: knocking.error is not None)
    assert knocking.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await receiver.wait_for(lambda: latest(receiver, "parley.streams.refused") == 1)
    assert latest(receiver, "parley.streams.active") == 1
    assert latest(receiver, "parley.streams.limit") == 1  # active == limit: full, as a dashboard sees it

    await call.aclose()
    await stub.Close(pb.CloseRequest(session=admitted))
    await receiver.wait_for(lambda: latest(receiver, "parley.streams.active") == 0)
    assert latest(receiver, "parley.streams.refused") == 1  # a count, not a gauge: it stays
