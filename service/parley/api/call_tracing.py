"""Call spans: Start / Say / Reply / Interrupt / Close / SubmitToolResult, linked to their session.

A small interceptor (ours rather than opentelemetry-instrumentation-grpc,
whose interceptor opens a span for every call, long audio streams included,
reads the process-global propagator, and cannot know which session a call
belongs to) extracts the caller's W3C `traceparent` / `tracestate` metadata
and opens a call scope (`parley.telemetry.calls`) for the handler. The
servicer joins the call to its session's trace with `join_session_trace()`
once the engine resolved the session for the caller.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from parley.api.interceptors import CallInterceptor, rebuild
from parley.telemetry.calls import CallScope, bind_call, call_scope
from parley.telemetry.session import TracedSession

TRACED_METHODS = frozenset({"Start", "Say", "Reply", "Interrupt", "Close", "SubmitToolResult"})
_PROPAGATOR = TraceContextTextMapPropagator()


def extract_parent(metadata: Any) -> Context | None:
    """The caller's trace context from gRPC metadata, or None without a valid traceparent."""
    carrier = {key: value for key, value in (metadata or ()) if key in ("traceparent", "tracestate")}
    if "traceparent" not in carrier:
        return None
    context = _PROPAGATOR.extract(carrier)
    return context if context else None


def join_session_trace(observer: object) -> None:
    """The call being handled belongs to this session: its span opens in the session's trace (if traced)."""
    if isinstance(observer, TracedSession):
        bind_call(observer)


class CallTracingInterceptor(CallInterceptor):
    """Opens a call scope around the unary calls of `service` named in TRACED_METHODS."""

    def __init__(self, service: str) -> None:
        self._prefix = f"/{service}/"
        self._service = service

    def intercept(self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method[len(self._prefix):] if details.method.startswith(self._prefix) else ""
        if method not in TRACED_METHODS or handler.unary_unary is None:
            return handler
        behavior = handler.unary_unary
        parent = extract_parent(details.invocation_metadata)
        service = self._service

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            code: grpc.StatusCode = grpc.StatusCode.OK
            with call_scope(CallScope(service, method, parent)) as scope:
                try:
                    response = await behavior(request, context)
                    code = context.code() or grpc.StatusCode.OK
                    return response
                except BaseException:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                finally:
                    scope.finish(code.value[0], code.name)

        return rebuild(handler, behavior=traced)
