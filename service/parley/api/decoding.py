"""Request bodies that do not decode as their protobuf message: INVALID_ARGUMENT, never a traceback.

grpc.aio decodes a unary request before any servicer code runs, and a
failing decoder ends the call with UNKNOWN, Python internals in its message,
and an error logged with a traceback. This interceptor, last in the chain
(so authentication and limits come first; the handlers they answer with
never decode the request), gives every handler, health and reflection
included, a decoder that does not raise for a unary request: it hands the
method a marker that the guarded behaviour answers with INVALID_ARGUMENT. For streamed requests the decoder
raises `MalformedMessage` (an InvalidArgument) from the reader; our own
service's handlers map it like any bad field, the others' are mapped here.
At most one warning line per `warn_every_seconds` tells the operator that
such requests arrive; the bytes are never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from parley.api.interceptors import CallInterceptor, rebuild, with_prologue
from parley.errors import InvalidArgument

log = logging.getLogger("parley.api")

REASON = "MALFORMED_REQUEST"


class MalformedMessage(InvalidArgument):
    """A request message that does not decode as its type."""

    def __init__(self, type_name: str) -> None:
        super().__init__("request", f"is not a valid {type_name} (it does not decode as protobuf)", reason=REASON)


class _Undecodable:
    """What a unary method receives instead of a request that did not decode."""

    def __init__(self, error: MalformedMessage) -> None:
        self.error = error


class WarnEvery:
    """Logs a warning at most once per `seconds`, counting the occurrences it left out."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._next = 0.0
        self._silenced = 0

    def __call__(self, message: str, **extra: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            self._silenced += 1
            return
        log.warning(message, extra={**extra, "since_last_warning": self._silenced})
        self._next = now + self._seconds
        self._silenced = 0


class DecodeGuard(CallInterceptor):
    """Undecodable requests on any method answer INVALID_ARGUMENT (BadRequest field "request")."""

    covers_open_methods = True

    def __init__(self, own_service: str, *, warn_every_seconds: float = 60.0) -> None:
        self._own_prefix = f"/{own_service}/"  # its servicer maps MalformedMessage itself
        self._warn = WarnEvery(warn_every_seconds)

    def intercept(self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method
        decode = handler.request_deserializer
        if decode is None:
            return handler
        type_name = _type_name(decode)
        streamed = bool(handler.stream_unary or handler.stream_stream)

        def safe_decode(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception:  # noqa: BLE001 - any decoder failure is the client's malformed message
                self._warn("undecodable request", method=method, bytes=len(data))
                error = MalformedMessage(type_name)
                if streamed:
                    raise error from None
                return _Undecodable(error)

        decoding = rebuild(handler, request_deserializer=safe_decode)
        if streamed and method.startswith(self._own_prefix):
            return decoding
        return with_prologue(decoding, _refuse_undecodable)


async def _refuse_undecodable(request: Any, context: grpc.aio.ServicerContext) -> None:
    if isinstance(request, _Undecodable):
        raise request.error


def _type_name(decode: Callable[[bytes], Any]) -> str:
    message_class = getattr(decode, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", "request message")
