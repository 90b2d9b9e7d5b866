"""Telemetry overhead: the engine capacity figure with tracing off vs exporting over OTLP.

The server runs as a subprocess on loopback; this process is the clients and,
with tracing on, a third process is the OTLP/gRPC receiver (the collector's
TraceService and MetricsService, counting what arrives), so decoding spans
loads neither the server nor the clients' clock. N sessions each hold a StreamAudio
call, play background audio and Say a sentence every second (about five spans
per Say plus two call spans); frame lateness is measured at the client
against each stream's absolute schedule, and the server's CPU time is read
from /proc. The figure is the ratio on/off of server CPU per frame and of p99
lateness.

Writes bench/results/telemetry.json and prints a table.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from common import STAND_INS, cpu_seconds, free_port, stream_frames, talk
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2

RESULTS = Path(__file__).parent / "results" / "telemetry.json"
SESSIONS = (25, 50)
STEP_SECONDS = 10.0


class CountingReceiver(trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    """Counts spans and metric exports; writes "spans metric_exports" to `counts` after each export."""

    def __init__(self, counts: Path) -> None:
        self.spans = 0
        self.metric_exports = 0
        self._counts = counts

    async def Export(self, request, context):  # noqa: N802
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            self.spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            response = trace_service_pb2.ExportTraceServiceResponse()
        else:
            self.metric_exports += 1
            response = metrics_service_pb2.ExportMetricsServiceResponse()
        self._counts.write_text(f"{self.spans} {self.metric_exports}")
        return response


async def serve_receiver(port: int, counts: Path) -> None:
    """The receiver process: serve until terminated."""
    receiver = CountingReceiver(counts)
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(receiver, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def received(counts: Path) -> tuple[int, int]:
    text = counts.read_text() if counts.exists() else "0 0"
    spans, exports = text.split()
    return int(spans), int(exports)



async def start_server(otel_endpoint: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if otel_endpoint:
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": otel_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_SERVICE_NAME": "parley-bench", "OTEL_METRIC_EXPORT_INTERVAL": "1000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley.cli", "serve", "--port", str(port), "--drain-timeout", "0",
         "--max-sessions", "2000",
         "--log-level", "WARNING", "--allow-stand-in-providers", "--max-caller-requests-per-second", "0"],
        stderr=subprocess.DEVNULL, env=env)
    address = f"127.0.0.1:{port}"
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
    return proc, address


async def step(stub, pid: int, count: int) -> dict[str, float]:
    config = session_pb2.SessionConfig(providers=STAND_INS)
    names = [(await stub.Start(pb.StartRequest(config=config))).session.name for _ in range(count)]
    stop = asyncio.Event()
    lateness: list[float] = []
    tasks = [asyncio.create_task(stream_frames(stub, n, stop, lateness)) for n in names]
    tasks += [asyncio.create_task(talk(stub, n, stop, every_seconds=1.0)) for n in names]
    await asyncio.sleep(1.5)
    cpu0, frames0 = cpu_seconds(pid), len(lateness)
    await asyncio.sleep(STEP_SECONDS)
    cpu = cpu_seconds(pid) - cpu0
    frames = len(lateness) - frames0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(stub.Close(pb.CloseRequest(session=n)) for n in names))
    values = np.array(lateness) if lateness else np.zeros(1)
    return {"sessions": count, "frames": frames, "server_cpu_s": cpu,
            "cpu_us_per_frame": cpu / max(1, frames) * 1e6,
            "p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}


async def run(mode: str, counts: Path | None, endpoint: str) -> list[dict[str, Any]]:
    proc, address = await start_server(endpoint)
    rows = []
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.AgentSessionServiceStub(channel)
            for count in SESSIONS:
                spans_before = received(counts)[0] if counts else 0
                row = await step(stub, proc.pid, count) | {"mode": mode}
                await asyncio.sleep(1.0)  # let the last batch arrive
                row["spans_received"] = (received(counts)[0] - spans_before) if counts else 0
                rows.append(row)
                print(f"  {mode:3s} {count:4d} sessions: {row['cpu_us_per_frame']:7.1f} µs CPU/frame  "
                      f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  spans {row['spans_received']}",
                      flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    return rows


async def main() -> None:
    port = free_port()
    counts = RESULTS.parent / ".telemetry_receiver_counts"
    counts.unlink(missing_ok=True)
    receiver = subprocess.Popen([sys.executable, __file__, "--receiver", str(port), str(counts)])
    try:
        off = await run("off", None, "")
        on = await run("on", counts, f"http://127.0.0.1:{port}")
    finally:
        receiver.terminate()
        receiver.wait(30)
    metric_exports = received(counts)[1]
    counts.unlink(missing_ok=True)
    ratios = [{
        "sessions": a["sessions"],
        "cpu_per_frame_on_over_off": b["cpu_us_per_frame"] / a["cpu_us_per_frame"],
        "p99_on_over_off": b["p99_ms"] / max(a["p99_ms"], 1e-3),
        "spans_per_second": b["spans_received"] / STEP_SECONDS,
    } for a, b in zip(off, on, strict=True)]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"step_seconds": STEP_SECONDS, "runs": off + on, "ratios": ratios,
                                   "metric_exports": metric_exports}, indent=2))
    print(f"\n{'sessions':>8}  {'CPU/frame on/off':>16}  {'p99 on/off':>10}  {'spans/s':>8}")
    for r in ratios:
        print(f"{r['sessions']:8d}  {r['cpu_per_frame_on_over_off']:16.3f}  {r['p99_on_over_off']:10.2f}  "
              f"{r['spans_per_second']:8.0f}")
    print(f"results: {RESULTS}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--receiver"]:
        asyncio.run(serve_receiver(int(sys.argv[2]), Path(sys.argv[3])))
    else:
        asyncio.run(main())
