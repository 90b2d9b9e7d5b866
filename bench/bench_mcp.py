"""MCP figures: what an MCP server adds to Start, and one tool call's round trip.

The MCP server (the SDK's, streamable HTTP under uvicorn) runs as a
subprocess on loopback with one cheap tool, so the figures are the
connection's and the SDK's, not the tool's. Sessions are started through the
embedded registry with stand-in providers.

Writes bench/results/mcp.json and prints a table.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import STAND_IN_CHOICES, free_port

from parley.chat import ToolCall
from parley.mcp.connection import McpConnection
from parley.sessions.config import McpServerConfig, SessionConfig
from parley.sessions.limits import RegistryLimits
from parley.sessions.registry import SessionRegistry

RESULTS = Path(__file__).parent / "results" / "mcp.json"
STARTS = 30
CALLS = 300
SERVER = """
import sys, uvicorn
from mcp.server import MCPServer
app = MCPServer("bench")

@app.tool()
def get_weather(city: str) -> str:
    \"\"\"The weather in a city.\"\"\"
    return f"sunny in {city}"

uvicorn.run(app.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""



async def wait_listening(port: int) -> None:
    for _ in range(500):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.02)
    raise RuntimeError("the MCP server did not start")


def summary(samples_ms: list[float]) -> dict[str, float]:
    a = np.array(samples_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "n": len(a)}


async def start_times(registry: SessionRegistry, config: SessionConfig) -> list[float]:
    out = []
    for _ in range(STARTS):
        t = time.perf_counter()
        session = await registry.start(config)
        out.append((time.perf_counter() - t) * 1000)
        await registry.close(session.name)
    return out


async def main() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        await wait_listening(port)
        url = f"http://127.0.0.1:{port}/mcp"
        server = McpServerConfig(name="bench", url=url)
        registry = SessionRegistry(RegistryLimits(allow_stand_in_providers=True))
        without = await start_times(registry, SessionConfig(providers=STAND_IN_CHOICES))
        with_mcp = await start_times(registry, SessionConfig(providers=STAND_IN_CHOICES, mcp_servers=(server,)))
        connection = McpConnection(server)
        await connection.open(10.0)
        calls = []
        call = ToolCall("c", "get_weather", json.dumps({"city": "Paris"}))
        for _ in range(CALLS):
            t = time.perf_counter()
            result = await connection.call(call.name, call.arguments_json, 10.0)
            calls.append((time.perf_counter() - t) * 1000)
            assert not result.is_error, result.text
        await connection.aclose()
        await registry.shutdown()
        registry.workers.close()
    finally:
        proc.terminate()
        proc.wait()
    results = {
        "start_without_mcp": summary(without),
        "start_with_one_mcp_server": summary(with_mcp),
        "mcp_tool_call": summary(calls),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'figure':<28}{'p50 ms':>10}{'p95 ms':>10}{'n':>6}")
    for name, r in results.items():
        print(f"{name:<28}{r['p50_ms']:>10}{r['p95_ms']:>10}{r['n']:>6}")


if __name__ == "__main__":
    asyncio.run(main())
