"""A real OTLP receiver, in-process: the collector's TraceService and MetricsService over gRPC.

Not a mock of the exporter: the server under test exports over the wire
with the OTLP exporters it uses in production, and this decodes what a
collector would receive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2


def _value(v: common_pb2.AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]  # (trace_id, span_id)
    events: tuple[str, ...]
    status_code: int
    start_ns: int
    end_ns: int
    service: str


class Receiver(trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self._changed = asyncio.Event()
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self._server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def Export(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802 - gRPC names
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            self._add_spans(request)
            response: Any = trace_service_pb2.ExportTraceServiceResponse()
        else:
            self.metric_requests.append(request)
            response = metrics_service_pb2.ExportMetricsServiceResponse()
        self._changed.set()
        return response

    def _add_spans(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = attributes(resource_spans.resource.attributes).get("service.name", "")
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    self.spans.append(ReceivedSpan(
                        s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), attributes(s.attributes),
                        tuple((link.trace_id.hex(), link.span_id.hex()) for link in s.links),
                        tuple(e.name for e in s.events), s.status.code, s.start_time_unix_nano,
                        s.end_time_unix_nano, service,
                    ))

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; spans so far: {sorted({s.name for s in self.spans})}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass
        return result

    # -- views ----------------------------------------------------------------------

    def named(self, name: str, **attrs: Any) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name and all(s.attributes.get(k) == v for k, v in attrs.items())]

    def children(self, parent: ReceivedSpan, name: str | None = None) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.parent_id == parent.span_id and s.trace_id == parent.trace_id
                and (name is None or s.name == name)]

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]

    def metric_points(self, name: str) -> list[Any]:
        """Every data point received for the metric `name` (histogram, sum or gauge), oldest first."""
        points: list[Any] = []
        for request in self.metric_requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name == name:
                            data = getattr(metric, metric.WhichOneof("data"))
                            points.extend(data.data_points)
        return points
