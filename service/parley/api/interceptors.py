"""Cross-cutting concerns of every call: the base every interceptor of ours shares.

An interceptor here is a `CallInterceptor`: the base resolves the method's
handler, leaves unknown methods (and, unless it says otherwise, health and
reflection) alone, and hands the rest to `intercept()`, which returns a
handler of the same shape. The helpers build such handlers: one that only
aborts, one that runs a prologue in the call's own task before the method,
one with another behaviour or request decoder.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from parley.api.status import to_status
from parley.errors import ParleyError

ALWAYS_OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.")

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
Prologue = Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]


def behavior_of(handler: grpc.RpcMethodHandler) -> Behavior:
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream


def rebuild(handler: grpc.RpcMethodHandler, *, behavior: Behavior | None = None,
            request_deserializer: Callable[[bytes], Any] | None = None) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler`, with another behaviour and/or request decoder."""
    kwargs = dict(request_deserializer=request_deserializer or handler.request_deserializer,
                  response_serializer=handler.response_serializer)
    behavior = behavior or behavior_of(handler)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(behavior, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(behavior, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(behavior, **kwargs)
    return grpc.stream_stream_rpc_method_handler(behavior, **kwargs)


def responds_with_stream(handler: grpc.RpcMethodHandler) -> bool:
    return bool(handler.unary_stream or handler.stream_stream)


def _ignore(data: bytes) -> None:
    return None


def aborting(handler: grpc.RpcMethodHandler, error: ParleyError) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that only answers `error` (it never decodes the request)."""
    status = to_status(error)

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(status)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(status)
        yield  # pragma: no cover - makes this an async generator

    return rebuild(handler, behavior=streaming if responds_with_stream(handler) else unary,
                   request_deserializer=_ignore)


def with_prologue(handler: grpc.RpcMethodHandler, prologue: Prologue) -> grpc.RpcMethodHandler:
    """The same handler, awaiting `prologue(request, context)` first, in the call's own task.

    Context variables the prologue sets are seen by that call only. A
    ParleyError raised by the prologue or the method ends the call with that
    error's status.
    """
    inner = behavior_of(handler)
    if responds_with_stream(handler) and inspect.isasyncgenfunction(inner):

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                await prologue(request, context)
                async for item in inner(request, context):
                    yield item
            except ParleyError as exc:
                await context.abort_with_status(to_status(exc))

        return rebuild(handler, behavior=streaming)

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:  # returns a response, or writes them
        try:
            await prologue(request, context)
            return await inner(request, context)
        except ParleyError as exc:
            await context.abort_with_status(to_status(exc))

    return rebuild(handler, behavior=call)


class CallInterceptor(grpc.aio.ServerInterceptor):
    """The prologue all our interceptors share; subclasses implement `intercept`."""

    covers_open_methods = False
    """True: health and reflection calls are intercepted too."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or (not self.covers_open_methods and details.method.startswith(ALWAYS_OPEN)):
            return handler
        return self.intercept(handler, details)

    def intercept(self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        raise NotImplementedError
