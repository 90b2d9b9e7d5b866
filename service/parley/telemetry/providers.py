"""The SDK providers Parley builds for itself: bounded batch export of spans, periodic export of metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from parley.telemetry.exporters import ExportChoice, metric_exporter, span_exporter

# Small, frequent batches by default (the OTEL_BSP_* variables still win):
# encoding a batch holds the interpreter lock on the exporter thread, and the
# SDK's default 512-span batch delayed every session's 20 ms frame clock
# (p99 frame lateness at 50 sessions: 15 ms with 512, 3 ms with 32).
EXPORT_BATCH = 32
EXPORT_DELAY_MS = 250


@dataclass(frozen=True)
class Built:
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None
    exporters: tuple[SpanExporter | MetricExporter, ...]
    """Kept so that a shutdown can stop them retrying against a collector that is gone."""


def build_providers(choice: ExportChoice) -> Built:
    """Providers owned by one server; none of them is made global.

    Span export is a BatchSpanProcessor: its queue is bounded (OTEL_BSP_MAX_QUEUE_SIZE,
    2048 by default) and drops new spans when full, so a dead collector costs a
    fixed amount of memory and never blocks a session. Metrics are aggregated
    in place and sent every OTEL_METRIC_EXPORT_INTERVAL ms (60 s by default).
    """
    resource = Resource.create({SERVICE_NAME: choice.service_name})
    exporters: list[SpanExporter | MetricExporter] = []
    meter_provider = None
    if choice.metrics:
        metrics_out = metric_exporter(choice)
        exporters.append(metrics_out)
        meter_provider = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(metrics_out)])
    tracer_provider = None
    if choice.traces:
        spans_out = span_exporter(choice)
        exporters.append(spans_out)
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(
            spans_out, meter_provider=meter_provider,
            max_export_batch_size=int(os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", EXPORT_BATCH)),
            schedule_delay_millis=float(os.environ.get("OTEL_BSP_SCHEDULE_DELAY", EXPORT_DELAY_MS)),
        ))
    return Built(tracer_provider, meter_provider, tuple(exporters))
