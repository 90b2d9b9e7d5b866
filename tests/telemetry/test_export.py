"""Export choices (OTEL_* variables, flags), OTLP/HTTP, a dead collector, and no global state."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from opentelemetry import metrics, trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace import ReadableSpan

from parley.server import ParleyServer
from parley.sessions.observer import NO_OBSERVER
from parley.settings import ServerSettings
from parley.telemetry.exporters import choose
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS

BASE = ServerSettings(host="127.0.0.1", port=0, reap_interval=0.05, shutdown_grace=1.0, log_level="WARNING",
                      allow_stand_in_providers=True)
EXPORT_THREADS = ("OtelBatchSpan", "OtelPeriodicExportingMetricReader", "parley-telemetry-export")
OTEL_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_PROTOCOL")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_standard_variables_choose_what_is_exported() -> None:
    assert not choose(env={}).traces  # nothing set: off
    on = choose(env={"OTEL_SERVICE_NAME": "voice"})
    assert on.traces and on.metrics and on.service_name == "voice"
    assert on.traces_protocol == "http/protobuf"  # the specification's default
    grpc_traces = choose(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"})
    assert grpc_traces.traces_protocol == "grpc" and grpc_traces.metrics_protocol == "http/protobuf"
    assert not choose(env={"OTEL_SERVICE_NAME": "x", "OTEL_METRICS_EXPORTER": "none"}).metrics
    assert not choose(env={"OTEL_SERVICE_NAME": "x", "OTEL_SDK_DISABLED": "true"}).traces
    flags = choose(endpoint="http://c:4317", protocol="grpc", env={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert flags.traces and flags.traces_protocol == "grpc"  # the flag wins
    with pytest.raises(ValueError, match="http/json"):
        choose(endpoint="http://c", protocol="http/json", env={})


async def test_telemetry_is_off_without_settings_and_sessions_get_the_no_op(clean_env) -> None:
    server = ParleyServer(BASE)
    await server.start()
    try:
        assert not server.telemetry.enabled
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.AgentSessionServiceStub(channel)
            name = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)))).session.name
            assert server.registry.get(name).observer is NO_OBSERVER
    finally:
        await server.stop()


class _HttpReceiver(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _HttpReceiver.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def http_receiver() -> Iterator[str]:
    _HttpReceiver.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HttpReceiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def test_otlp_http_protobuf_from_the_standard_variables_alone(clean_env, http_receiver: str) -> None:
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver)
    clean_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    clean_env.setenv("OTEL_SERVICE_NAME", "parley-http")
    server = ParleyServer(BASE)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.AgentSessionServiceStub(channel)
            name = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)))).session.name
            await stub.Close(pb.CloseRequest(session=name))
    finally:
        await server.stop()  # exports what is left
    names = []
    for path, body in _HttpReceiver.received:
        if path == "/v1/traces":
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            names += [s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert "agent_session" in names
    assert any(path == "/v1/metrics" for path, _ in _HttpReceiver.received)


async def test_a_dead_collector_never_slows_sessions_and_memory_stays_bounded(clean_env) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    clean_env.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
    clean_env.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16")
    server = ParleyServer(BASE.replace(otel_endpoint=dead, otel_protocol="grpc"))
    await server.start()
    global_tracer_provider, global_meter_provider = trace.get_tracer_provider(), metrics.get_meter_provider()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.AgentSessionServiceStub(channel)
            config = session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)
            alive = []
            for _ in range(5):  # 7 spans per session: 350 in all, against a queue of 64
                names = [(await stub.Start(pb.StartRequest(config=config))).session.name for _ in range(10)]
                said = await asyncio.gather(*(stub.Say(pb.SayRequest(session=n, text="hi")) for n in names))
                done = await asyncio.gather(*(stub.WaitUtterance(pb.WaitUtteranceRequest(
                    session=n, utterance_id=s.utterance.id), timeout=20) for n, s in zip(names, said, strict=True)))
                assert all(d.utterance.state == session_pb2.UTTERANCE_STATE_PLAYED for d in done)
                await asyncio.gather(*(stub.Close(pb.CloseRequest(session=n), timeout=5) for n in names))
                gc.collect()
                alive.append(sum(isinstance(o, ReadableSpan) for o in gc.get_objects()))
        # the queue (64) and the batch being retried (16) hold spans, whatever the number of sessions
        assert max(alive) <= 64 + 2 * 16, alive
        # the server's providers were never made global
        assert trace.get_tracer_provider() is global_tracer_provider is not server.telemetry.tracer_provider
        assert metrics.get_meter_provider() is global_meter_provider is not server.telemetry.meter_provider
    finally:
        await server.stop()
    # stopped, the server leaves nothing retrying against the dead collector
    deadline = time.monotonic() + 10
    while (busy := [t.name for t in threading.enumerate() if t.name.startswith(EXPORT_THREADS)]):
        assert time.monotonic() < deadline, f"still exporting after stop: {busy}"
        await asyncio.sleep(0.05)
