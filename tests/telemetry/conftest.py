"""A real Parley server exporting over OTLP/gRPC to an in-process receiver."""

from __future__ import annotations

import pytest

from parley.settings import ServerSettings
from tests.telemetry.receiver import Receiver


@pytest.fixture
def export_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard OTEL_* knobs, short so a test sees its data within a second."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "300")


@pytest.fixture
def server_settings(receiver: Receiver, export_env: None) -> ServerSettings:
    return ServerSettings(host="127.0.0.1", port=0, reap_interval=0.05, shutdown_grace=1.0, log_level="WARNING",
                          allow_stand_in_providers=True,
                          otel_endpoint=receiver.endpoint, otel_protocol="grpc", otel_service_name="parley-test")
