"""Domain errors -> google.rpc.Status with details (BadRequest, ErrorInfo)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from parley import errors

log = logging.getLogger("parley.api")

DOMAIN = "parley"
DRAIN_MESSAGES = 256
DRAIN_SECONDS = 0.5

_CODES: dict[type[errors.ParleyError], int] = {
    errors.InvalidArgument: code_pb2.INVALID_ARGUMENT,
    errors.NotFound: code_pb2.NOT_FOUND,
    errors.FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    errors.ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
    errors.Aborted: code_pb2.ABORTED,
    errors.Unavailable: code_pb2.UNAVAILABLE,
    errors.DeadlineExceeded: code_pb2.DEADLINE_EXCEEDED,
    errors.Unauthenticated: code_pb2.UNAUTHENTICATED,
    errors.PermissionDenied: code_pb2.PERMISSION_DENIED,
}


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(error: errors.ParleyError) -> grpc.Status:
    """The rich status for a domain error."""
    code = next((c for cls, c in _CODES.items() if isinstance(error, cls)), code_pb2.INTERNAL)
    details = []
    if isinstance(error, errors.InvalidArgument):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.description)
                    ]
                )
            )
        )
    metadata = {"limit": error.limit} if isinstance(error, errors.ResourceExhausted) else {}
    details.append(_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata)))
    if isinstance(error, errors.ResourceExhausted) and error.retry_after_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(1, round(error.retry_after_seconds * 1e9)))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return rpc_status.to_status(status_pb2.Status(code=code, message=error.message, details=details))


def internal_status() -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN)
    return rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INTERNAL, message="internal error", details=[_pack(info)])
    )


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    if isinstance(exc, errors.ParleyError):
        await context.abort_with_status(to_status(exc))
    log.exception("unhandled error", extra={"method": method}, exc_info=exc)
    await context.abort_with_status(internal_status())


async def _take_what_was_sent(context: grpc.aio.ServicerContext) -> None:
    """Read (and drop) the messages a client already sent, briefly, before ending its call with an error.

    A client still writing when the server's status arrives loses that
    status: its gRPC library fails the write and reports INTERNAL "Internal
    error from Core" instead. Reading to the client's half-close (at most
    DRAIN_MESSAGES messages or DRAIN_SECONDS) lets a client that sent a burst
    and stopped always read the real status.
    """
    async def drain() -> None:
        for _ in range(DRAIN_MESSAGES):
            if await context.read() is grpc.aio.EOF:
                return

    try:
        await asyncio.wait_for(drain(), DRAIN_SECONDS)
    except Exception:  # noqa: BLE001 - a cut, cancelled or malformed call: the status goes out as it can
        pass


def maps_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors raised by a servicer method into rich gRPC statuses.

    Works for unary methods (coroutines) and streaming ones (async generators).
    """
    name = method.__name__
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                async for item in method(self, request, context):
                    yield item
            except Exception as exc:  # noqa: BLE001 - every error becomes a status
                if hasattr(request, "__aiter__"):
                    await _take_what_was_sent(context)
                await _abort(context, exc, name)

        return stream_wrapper

    @functools.wraps(method)
    async def unary_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status
            await _abort(context, exc, name)

    return unary_wrapper
