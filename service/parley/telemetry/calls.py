"""Call spans: Start / Say / Reply / Interrupt / Close / SubmitToolResult, linked to their session.

A small server interceptor (ours rather than opentelemetry-instrumentation-grpc,
whose interceptor opens a span for every call, long audio streams included,
reads the process-global propagator, and cannot know which session a call
belongs to) extracts the caller's W3C `traceparent` / `tracestate` metadata and
opens a *call scope* for the handler. The session is only known once the
engine has resolved it for the caller (ownership checked): `bind_call()` then
opens the call span in that session's trace — a child of the caller's span
when a traceparent came in (with a link to the session's root span), else a
child of the session's root span. Calls that never reach a session (bad
name, not found) record no span.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACED_METHODS = frozenset({"Start", "Say", "Reply", "Interrupt", "Close", "SubmitToolResult"})
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass
class CallScope:
    """One traced call in flight."""

    rpc_service: str
    rpc_method: str
    parent: Context | None  # the caller's trace context, if it sent one
    start_ns: int = field(default_factory=time.time_ns)
    span: Span | None = None
    open: bool = True

    @property
    def name(self) -> str:
        return f"{self.rpc_service}/{self.rpc_method}"

    def finish(self, code: grpc.StatusCode | None) -> None:
        self.open = False
        if self.span is None:
            return
        code = code or grpc.StatusCode.OK
        self.span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK:
            self.span.set_status(Status(StatusCode.ERROR, code.name))
        self.span.end()


_SCOPE: ContextVar[CallScope | None] = ContextVar("parley_call_scope", default=None)


class CallBinder(Protocol):
    def bind_call(self, scope: CallScope) -> Span | None: ...


def current_call() -> CallScope | None:
    """The traced call this code runs in, if it is still in flight."""
    scope = _SCOPE.get()
    return scope if scope is not None and scope.open else None


def bind_call(session_telemetry: CallBinder) -> None:
    """Open the current call's span in this session's trace (once per call; no-op outside a traced call)."""
    scope = _SCOPE.get()
    if scope is not None and scope.open and scope.span is None:
        scope.span = session_telemetry.bind_call(scope)


def extract_parent(metadata: Any) -> Context | None:
    """The caller's trace context from gRPC metadata, or None without a valid traceparent."""
    carrier = {key: value for key, value in (metadata or ()) if key in ("traceparent", "tracestate")}
    if "traceparent" not in carrier:
        return None
    context = _PROPAGATOR.extract(carrier)
    return context if context else None


class CallTracingInterceptor(grpc.aio.ServerInterceptor):
    """Opens a call scope around the unary calls of `service` named in TRACED_METHODS."""

    def __init__(self, service: str) -> None:
        self._prefix = f"/{service}/"
        self._service = service

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method[len(self._prefix):] if details.method.startswith(self._prefix) else ""
        if handler is None or method not in TRACED_METHODS or handler.unary_unary is None:
            return handler
        behavior = handler.unary_unary
        parent = extract_parent(details.invocation_metadata)
        service = self._service

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            scope = CallScope(service, method, parent)
            token = _SCOPE.set(scope)
            code: grpc.StatusCode | None = None
            try:
                response = await behavior(request, context)
                code = context.code()
                return response
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                _SCOPE.reset(token)
                scope.finish(code)

        return grpc.unary_unary_rpc_method_handler(
            traced, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
