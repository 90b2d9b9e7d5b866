"""Cross-cutting concerns of every call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from parley.api.status import to_status
from parley.errors import Unavailable

ALWAYS_OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _aborting_handler(handler: grpc.RpcMethodHandler, status: grpc.Status) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that only aborts with `status`."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(status)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort_with_status(status)
        yield  # pragma: no cover - makes this an async generator

    kwargs = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)


class DrainInterceptor(grpc.aio.ServerInterceptor):
    """While the server drains, new calls (but health and reflection) get UNAVAILABLE."""

    def __init__(self) -> None:
        self.draining = False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if self.draining and handler is not None and not details.method.startswith(ALWAYS_OPEN):
            return _aborting_handler(handler, to_status(Unavailable("the server is draining", reason="DRAINING")))
        return handler
