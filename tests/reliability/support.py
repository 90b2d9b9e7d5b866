"""Helpers for the reliability tests: read a call's status, watch a control stream, run a server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import StreamClient


@dataclass(frozen=True)
class Outcome:
    """What a call ended with, as a client sees it."""

    code: grpc.StatusCode
    message: str = ""
    fields: tuple[str, ...] = ()
    reason: str = ""
    limit: str = ""


def outcome_from(code: grpc.StatusCode, message: str, trailing: grpc.aio.Metadata | None) -> Outcome:
    raw = dict(trailing or ()).get("grpc-status-details-bin")
    if raw is None:
        return Outcome(code, message)
    status = status_pb2.Status.FromString(raw)
    assert status.code == code.value[0], f"the rich status must carry the call's code: {code} vs {status.code} {message}"
    fields: list[str] = []
    reason = limit = ""
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, limit = info.reason, info.metadata.get("limit", "")
    return Outcome(code, message, tuple(fields), reason, limit)


async def outcome_of(call: Awaitable[object]) -> Outcome:
    """Await a unary call; its outcome (OK or the error's details)."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return outcome_from(exc.code(), exc.details() or "", exc.trailing_metadata())
    return Outcome(grpc.StatusCode.OK)


async def stream_outcome(stub, messages: list[pb.StreamAudioRequest], *, timeout: float = 10.0,
                         metadata: tuple[tuple[str, str], ...] = ()) -> Outcome:
    """Send `messages` on a StreamAudio call, half-close, and return how the call ended."""
    call = stub.StreamAudio(timeout=timeout, metadata=metadata)
    for message in messages:
        try:
            await call.write(message)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            break  # the server already ended the call; its status says why
    try:
        await call.done_writing()
    except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
        pass
    try:
        async for _ in call:  # the status comes after the last response, so read them all
            pass
    except grpc.aio.AioRpcError:
        pass
    code = await call.code()
    return outcome_from(code, await call.details() or "", await call.trailing_metadata())


async def final(stub, session: str, utterance: str) -> session_pb2.Utterance:
    """The utterance once it has ended (WaitUtterance)."""
    return (await stub.WaitUtterance(pb.WaitUtteranceRequest(session=session, utterance_id=utterance))).utterance


def contiguous(client: StreamClient) -> bool:
    """Every frame the stream sent arrived: sequence numbers without a gap, no FramesDropped."""
    seqs = [f.sequence for f in client.frames]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) and not client.of("frames_dropped") if seqs else True


async def wait_frames(client: StreamClient, more_than: int) -> None:
    await client.wait_for(lambda: len(client.frames) > more_than)


class ErrorLog(logging.Handler):
    """Collects ERROR records (unhandled exceptions) of the "parley" loggers."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> ErrorLog:
        logging.getLogger("parley").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("parley").removeHandler(self)

    def summary(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else f"{r.name}: {r.getMessage()}"
                for r in self.records]



def attach(stub, session: str, metadata: tuple[tuple[str, str], ...] = ()) -> StreamClient:
    """A StreamAudio call on `session` (16 kHz in), recording what it receives."""
    call = stub.StreamAudio(metadata=metadata)
    client = StreamClient(call)
    client._reader = asyncio.ensure_future(_configure_and_read(client, session))
    return client


async def _configure_and_read(client: StreamClient, session: str) -> None:
    await client.call.write(pb.StreamAudioRequest(config=pb.StreamConfig(session=session)))
    await client._read()
