"""OTLP exporters chosen by the standard OTEL_* variables, or by the server's flags.

Telemetry is on when an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, or a
per-signal one) or `OTEL_SERVICE_NAME` is set, or `--otel-endpoint` is
given; `OTEL_SDK_DISABLED=true` turns it off, `OTEL_TRACES_EXPORTER=none` /
`OTEL_METRICS_EXPORTER=none` one signal. The protocol defaults to
`http/protobuf`, the OpenTelemetry specification's default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

PROTOCOLS = ("grpc", "http/protobuf")
_ENABLING = (
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_SERVICE_NAME",
)


@dataclass(frozen=True)
class ExportChoice:
    """What to export where; an empty endpoint lets the exporter read its OTEL_* variables."""

    traces: bool
    metrics: bool
    traces_protocol: str = "http/protobuf"
    metrics_protocol: str = "http/protobuf"
    endpoint: str = ""
    service_name: str = "parley"


def choose(endpoint: str = "", protocol: str = "", service_name: str = "",
           env: Mapping[str, str] | None = None) -> ExportChoice:
    """Read the flags (which win) and the standard variables; ValueError on a bad protocol."""
    env = os.environ if env is None else env
    service = service_name or env.get("OTEL_SERVICE_NAME", "") or "parley"
    on = bool(endpoint) or any(env.get(name) for name in _ENABLING)
    if not on or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ExportChoice(False, False, service_name=service)

    def pick(signal_variable: str) -> str:
        """The flag, else the signal's variable, else the general one, else http/protobuf; named when bad."""
        for source, value in (("--otel-protocol", protocol), (signal_variable, env.get(signal_variable, "")),
                              ("OTEL_EXPORTER_OTLP_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", ""))):
            if value:
                if value not in PROTOCOLS:
                    raise ValueError(f"{source}: OTLP protocol must be one of {', '.join(PROTOCOLS)}, got {value!r}")
                return value
        return "http/protobuf"

    traces_protocol = pick("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    metrics_protocol = pick("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
    return ExportChoice(
        traces=env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() != "none",
        metrics=env.get("OTEL_METRICS_EXPORTER", "otlp").strip().lower() != "none",
        traces_protocol=traces_protocol, metrics_protocol=metrics_protocol,
        endpoint=endpoint, service_name=service,
    )


def _signal_url(base: str, signal: str) -> str:
    return base.rstrip("/") + f"/v1/{signal}"


def span_exporter(choice: ExportChoice) -> SpanExporter:
    if choice.traces_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

        return GrpcSpans(endpoint=choice.endpoint or None)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

    return HttpSpans(endpoint=_signal_url(choice.endpoint, "traces") if choice.endpoint else None)


def metric_exporter(choice: ExportChoice) -> MetricExporter:
    if choice.metrics_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics

        return GrpcMetrics(endpoint=choice.endpoint or None)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics

    return HttpMetrics(endpoint=_signal_url(choice.endpoint, "metrics") if choice.endpoint else None)
