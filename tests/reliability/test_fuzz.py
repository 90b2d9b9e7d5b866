"""Fuzzing a real server: random request messages and random StreamAudio sequences.

Requests are generated from the messages' descriptors, every field with
hostile values (NaN, infinities, extreme integers, unknown enum numbers,
control characters, huge and empty strings and bytes). The server must answer
each with a documented code (and ours with a rich status), log no unhandled
exception, and keep serving.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.server import ParleyServer
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS
from tests.reliability.support import ErrorLog, outcome_from

LIVE = "\x00LIVE"  # replaced by the example's live session
C = grpc.StatusCode
DOCUMENTED = {C.OK, C.INVALID_ARGUMENT, C.NOT_FOUND, C.FAILED_PRECONDITION, C.RESOURCE_EXHAUSTED, C.ABORTED}
OURS_WITHOUT_DETAILS = {C.OK}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

# -- values from descriptors -------------------------------------------------------------------------

STRINGS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", LIVE, "sessions/", "sessions/nobody", "sessions/../../x", "u1", "call_0",
                     "builtin:ambience", "builtin:nope", "/etc/passwd", "../x.wav", "a" * 5000, "\x00\x07\x1b",
                     "hello there"]),
)
INT32 = st.one_of(st.integers(-3, 100), st.sampled_from([-2**31, 2**31 - 1, 8000, 16000, 44100, 48000, 96000]))
DOUBLES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 0.5, 1e308]))
SCALARS: dict[int, Any] = {
    FieldDescriptor.TYPE_STRING: STRINGS,
    FieldDescriptor.TYPE_BYTES: st.one_of(st.binary(max_size=700), st.sampled_from([b"", bytes(641), bytes(70_000)])),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: INT32,
    FieldDescriptor.TYPE_SINT32: INT32,
    FieldDescriptor.TYPE_INT64: st.integers(-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_DOUBLE: DOUBLES,
    FieldDescriptor.TYPE_FLOAT: st.floats(allow_nan=True, allow_infinity=True, width=32),
    FieldDescriptor.TYPE_ENUM: st.integers(-2, 12),  # unknown numbers included
}


SESSION_NAMES = st.one_of(st.just(LIVE), st.just(LIVE), st.just(LIVE), STRINGS)  # mostly the live session
PCM = st.one_of(st.binary(max_size=1400).map(lambda b: b[: len(b) // 2 * 2]), SCALARS[FieldDescriptor.TYPE_BYTES])


def value_of(field: FieldDescriptor, depth: int) -> Any:
    if field.name == "session":
        return SESSION_NAMES
    if field.name == "pcm":
        return PCM
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            return st.dictionaries(SCALARS[key.type], value_of(value, depth + 1), max_size=2)
        single = messages(field.message_type, depth + 1)
    else:
        single = SCALARS[field.type]
    if field.is_repeated:
        return st.lists(single, max_size=3 if depth < 2 else 1)
    return single


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    cls = message_factory.GetMessageClass(descriptor)
    if depth > 3:
        return st.just(cls())
    optional = {f.name: st.deferred(lambda f=f: value_of(f, depth)) for f in descriptor.fields}
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: _build(cls, values))


def _build(cls: Any, values: dict[str, Any]) -> Any:
    message = cls()
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name) if field.is_repeated or \
            field.type == FieldDescriptor.TYPE_MESSAGE else None
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            for k, v in value.items():
                if field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif field.is_repeated:
            target.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


# -- the server, in its own thread (hypothesis drives a synchronous client) ----------------------------


class ThreadedServer:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzzed-server", daemon=True)
        self._thread.start()
        settings_ = ServerSettings(host="127.0.0.1", port=0, log_level="WARNING", shutdown_grace=1.0,
                                   max_message_bytes=64 * 1024, provider_stall_seconds=2.0,
                                   allow_stand_in_providers=True)
        self.server = self._run(self._make(settings_))
        self.port = self._run(self.server.start())

    @staticmethod
    async def _make(settings_: ServerSettings) -> ParleyServer:
        return ParleyServer(settings_)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        self._run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[tuple[pb_grpc.AgentSessionServiceStub, ErrorLog]]:
    server = ThreadedServer()
    with ErrorLog() as errors, grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.AgentSessionServiceStub(channel), errors
    server.stop()


def live_session(stub: pb_grpc.AgentSessionServiceStub) -> str:
    config = session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS, tools=[session_pb2.ToolDefinition(name="t")])
    return stub.Start(pb.StartRequest(config=config)).session.name


def bind(message: Any, session: str) -> Any:
    """Put the live session's name where the generator chose LIVE; keep the server offline."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated \
                and value == LIVE:
            setattr(message, field.name, session)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated \
                and not field.message_type.GetOptions().map_entry:
            bind(value, session)
    if isinstance(message, session_pb2.SessionConfig):
        message.providers.CopyFrom(STAND_IN_PROVIDERS)  # no model loading
        del message.mcp_servers[:]  # no connections off this machine
    return message


def check(error: grpc.RpcError | None, allowed: set[grpc.StatusCode] = DOCUMENTED) -> None:
    if error is None:
        return
    code = error.code()
    assert code in allowed, f"{code}: {error.details()}"
    if code is C.RESOURCE_EXHAUSTED and "larger than max" in (error.details() or ""):
        return  # gRPC's own message size check, before our code runs
    if code in DOCUMENTED - OURS_WITHOUT_DETAILS:
        assert outcome_from(code, error.details() or "", error.trailing_metadata()).reason, "no ErrorInfo"


UNARY = ["Start", "Get", "List", "Close", "Say", "Reply", "Interrupt", "PlayBackgroundAudio", "StopBackgroundAudio",
         "StartThinkingAudio", "StopThinkingAudio", "SubmitToolResult", "WaitUtterance"]
SERVICE = pb.DESCRIPTOR.services_by_name["AgentSessionService"]
REQUESTS = st.one_of(*(
    st.tuples(st.just(name), messages(SERVICE.methods_by_name[name].input_type)) for name in UNARY + ["WatchEvents"]
))


@FUZZ
@given(calls=st.lists(REQUESTS, min_size=1, max_size=4))
def test_random_requests_get_documented_codes(fuzzed, calls: list[tuple[str, Any]]) -> None:
    stub, errors = fuzzed
    session = live_session(stub)
    for method, request in calls:
        request = bind(request, session)
        error = None
        try:
            if method == "WatchEvents":
                for n, _ in enumerate(stub.WatchEvents(request, timeout=0.3)):
                    if n >= 2:
                        break
            else:
                getattr(stub, method)(request, timeout=0.3 if method == "WaitUtterance" else 10)
        except grpc.RpcError as exc:
            error = exc
        waits = method in ("WatchEvents", "WaitUtterance")
        check(error, DOCUMENTED | ({C.DEADLINE_EXCEEDED} if waits else set()))
    stub.Close(pb.CloseRequest(session=session))
    assert stub.Get(pb.GetRequest(session=session)).session.status == session_pb2.SESSION_STATUS_CLOSED
    assert not errors.records, errors.summary()


STREAM_MESSAGES = st.lists(messages(pb.StreamAudioRequest.DESCRIPTOR), max_size=6)


@FUZZ
@given(sequence=STREAM_MESSAGES, valid_first=st.booleans())
def test_random_stream_sequences_get_documented_codes(fuzzed, sequence: list[Any], valid_first: bool) -> None:
    stub, errors = fuzzed
    session = live_session(stub)
    sequence = [bind(m, session) for m in sequence]
    if valid_first:
        sequence.insert(0, pb.StreamAudioRequest(config=pb.StreamConfig(session=session)))
    call = stub.StreamAudio(iter(sequence), timeout=5)
    error = None
    try:
        for n, _ in enumerate(call):
            if n >= 5:
                call.cancel()
    except grpc.RpcError as exc:
        error = exc
    check(error, DOCUMENTED | {C.CANCELLED})
    assert stub.Get(pb.GetRequest(session=session)).session.status == session_pb2.SESSION_STATUS_ACTIVE
    stub.Close(pb.CloseRequest(session=session))
    assert not errors.records, errors.summary()
