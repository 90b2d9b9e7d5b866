"""Tracing and metrics over OTLP, per session, with no global OpenTelemetry state."""

from parley.telemetry.session import NO_REPLY_TRACE, NO_SESSION_TELEMETRY, ReplyTrace, SessionTelemetry
from parley.telemetry.telemetry import Telemetry

__all__ = ["NO_REPLY_TRACE", "NO_SESSION_TELEMETRY", "ReplyTrace", "SessionTelemetry", "Telemetry"]
