"""Request bodies that are not the method's protobuf message: INVALID_ARGUMENT on every method, nothing leaked.

The bytes go through a generic channel (no serializer), as a hostile client
would send them; the server must answer with a rich status naming the
request, say nothing of its internals, log no traceback, and warn once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS
from tests.reliability.support import Outcome, outcome_from

SERVICE = pb.DESCRIPTOR.services_by_name["AgentSessionService"]
VALID_SAY = pb.SayRequest(session="sessions/abc", text="hello there").SerializeToString()
BODIES = {
    "random bytes": bytes([0xFF, 0xFE, 0x07, 0x99, 0x01, 0xFF]),
    "truncated message": VALID_SAY[: len(VALID_SAY) - 4],
    "invalid UTF-8 in a string field": b"\x0a\x02\xff\xfe",
    "over-long varint": b"\x10" + b"\xff" * 11,
}
INTERNALS = ("Unexpected", "DecodeError", "class", "Traceback", "google.protobuf")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger("parley"), logging.getLogger("grpc")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


async def send_raw(channel: grpc.aio.Channel, path: str, client_streaming: bool, server_streaming: bool,
                   body: bytes) -> Outcome:
    """One call of `path` carrying `body` as its (first) request message."""
    try:
        if client_streaming:
            call = channel.stream_stream(path) if server_streaming else channel.stream_unary(path)
            stream = call(iter([body]), timeout=10)
            if server_streaming:
                async for _ in stream:
                    pass
            else:
                await stream
        elif server_streaming:
            async for _ in channel.unary_stream(path)(body, timeout=10):
                pass
        else:
            await channel.unary_unary(path)(body, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return outcome_from(exc.code(), exc.details() or "", exc.trailing_metadata())
    return Outcome(grpc.StatusCode.OK)


def assert_refused(outcome: Outcome, what: str) -> None:
    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT, (what, outcome)
    assert outcome.fields == ("request",) and outcome.reason == "MALFORMED_REQUEST", (what, outcome)
    assert not any(word in outcome.message for word in INTERNALS), (what, outcome.message)


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
async def test_every_method_refuses_an_undecodable_body(channel, stub, logged: Records, body: bytes) -> None:
    for method in SERVICE.methods:
        first = method.input_type.fields_by_number.get(1)
        if body == BODIES["invalid UTF-8 in a string field"] and (first is None or first.type != first.TYPE_STRING):
            continue  # only a string field can hold bad UTF-8 (elsewhere these bytes are an unknown field)
        path = f"/{SERVICE.full_name}/{method.name}"
        outcome = await send_raw(channel, path, method.client_streaming, method.server_streaming, body)
        assert_refused(outcome, method.name)
    for path, client_streaming, server_streaming in (
        ("/grpc.health.v1.Health/Check", False, False),
        ("/grpc.health.v1.Health/Watch", False, True),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", True, True),
    ):
        assert_refused(await send_raw(channel, path, client_streaming, server_streaming, body), path)

    # the server still serves, logged no error and warned once
    started = await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)))
    assert started.session.name.startswith("sessions/")
    assert not [r for r in logged.records if r.levelno >= logging.ERROR], [r.getMessage() for r in logged.records]
    warnings = [r for r in logged.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["undecodable request"]


async def test_an_undecodable_audio_message_after_the_config_ends_the_stream_invalid(channel, stub) -> None:
    session = (await stub.Start(pb.StartRequest(
        config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)))).session.name
    config = pb.StreamAudioRequest(config=pb.StreamConfig(session=session)).SerializeToString()
    call = channel.stream_stream(f"/{SERVICE.full_name}/StreamAudio")(iter([config, BODIES["over-long varint"]]))
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        async for _ in call:
            pass
    exc = failure.value
    assert_refused(outcome_from(exc.code(), exc.details() or "", exc.trailing_metadata()), "StreamAudio")
    assert (await stub.Get(pb.GetRequest(session=session))).session.status == session_pb2.SESSION_STATUS_ACTIVE

