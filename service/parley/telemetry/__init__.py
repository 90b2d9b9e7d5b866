"""Tracing and metrics over OTLP, per session, with no global OpenTelemetry state."""

from parley.telemetry.telemetry import Telemetry

__all__ = ["Telemetry"]
