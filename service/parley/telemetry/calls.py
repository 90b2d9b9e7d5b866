"""Call scopes: which traced call the running code belongs to, and its span once the session is known.

The api layer's call-tracing interceptor (`parley.api.call_tracing`) opens a
`CallScope` around each traced call, with the caller's trace context if it
sent one. The session is only known once the engine has resolved it for the
caller (ownership checked); the api layer then calls `bind_call()` with that
session's telemetry, which opens the call span in the session's trace — a
child of the caller's span when a traceparent came in (with a link to the
session's root span), else a child of the session's root span. Calls that
never reach a session (bad name, not found) record no span. Nothing here
knows gRPC: a status is a code number and name.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

OK_CODE = 0


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

    def finish(self, code: int, code_name: str) -> None:
        """End the call's span with the call's status (gRPC's code number and name)."""
        self.open = False
        if self.span is None:
            return
        self.span.set_attribute("rpc.grpc.status_code", code)
        if code != OK_CODE:
            self.span.set_status(Status(StatusCode.ERROR, code_name))
        self.span.end()


_SCOPE: ContextVar[CallScope | None] = ContextVar("parley_call_scope", default=None)


class CallBinder(Protocol):
    def bind_call(self, scope: CallScope) -> Span | None: ...


@contextmanager
def call_scope(scope: CallScope) -> Iterator[CallScope]:
    """Run the code of one call inside `scope` (current_call() returns it there)."""
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def current_call() -> CallScope | None:
    """The traced call this code runs in, if it is still in flight."""
    scope = _SCOPE.get()
    return scope if scope is not None and scope.open else None


def bind_call(session_telemetry: CallBinder) -> None:
    """Open the current call's span in this session's trace (once per call; no-op outside a traced call)."""
    scope = _SCOPE.get()
    if scope is not None and scope.open and scope.span is None:
        scope.span = session_telemetry.bind_call(scope)
