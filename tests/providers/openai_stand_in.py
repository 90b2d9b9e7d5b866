"""A stand-in for a remote OpenAI-compatible endpoint, on 127.0.0.1.

A real HTTP/1.1 server (asyncio streams) that answers POST
/v1/chat/completions with server-sent events sent as chunked transfer
encoding, one event per chunk, exactly as OpenAI, vLLM or Ollama stream. Each
request takes the next scripted reply; the requests are kept for assertions.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """One scripted answer.

    status != 200 sends that status with a JSON error (and `headers`). Otherwise `events`
    (SSE data payloads: dicts are JSON-encoded, strings sent as they are) are
    streamed, then "[DONE]" if `done`. `gate` holds the stream after
    `gate_after` events until it is set; `stall` sends the headers and then
    nothing.
    """

    events: list[dict[str, Any] | str] = field(default_factory=list)
    status: int = 200
    done: bool = True
    stall: bool = False
    gate: asyncio.Event | None = None
    gate_after: int = 1
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received: float = field(default_factory=time.monotonic)


def text_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "stand-in",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}  # fmt: skip


def tool_chunk(index: int, *, id: str = "", name: str = "", arguments: str = "") -> dict[str, Any]:
    function: dict[str, str] = {"arguments": arguments}
    if name:
        function["name"] = name
    call: dict[str, Any] = {"index": index, "function": function}
    if id:
        call.update(id=id, type="function")
    return {"id": "c1", "object": "chat.completion.chunk", "model": "stand-in",
            "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}  # fmt: skip


def finish_chunk(reason: str) -> dict[str, Any]:
    return {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


def usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    return {"id": "c1", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


class StandInOpenAIServer:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Request] = []
        self.disconnected = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.disconnected.set()
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode()
        headers: dict[str, str] = {}
        while (line := (await reader.readline()).decode().strip()) != "":
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Request(request_line.split()[1], headers, json.loads(raw)))
        reply = self.replies.pop(0)
        if reply.status != 200:
            payload = json.dumps({"error": {"message": "stand-in failure", "type": "server_error"}}).encode()
            extra = "".join(f"{key}: {value}\r\n" for key, value in reply.headers.items())
            writer.write(
                f"HTTP/1.1 {reply.status} Error\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        if reply.stall:
            await reader.read()  # until the client hangs up
            self.disconnected.set()
            return
        payloads = [e if isinstance(e, str) else json.dumps(e) for e in reply.events]
        if reply.done:
            payloads.append("[DONE]")
        for index, payload in enumerate(payloads):
            if reply.gate is not None and index == reply.gate_after and not await self._wait(reply.gate, reader):
                self.disconnected.set()
                return
            await self._send_chunk(writer, f"data: {payload}\n\n".encode())
        await self._send_chunk(writer, b"")

    @staticmethod
    async def _wait(gate: asyncio.Event, reader: asyncio.StreamReader) -> bool:
        """Wait for the gate; False if the client hung up first."""
        opened = asyncio.ensure_future(gate.wait())
        hangup = asyncio.ensure_future(reader.read())
        await asyncio.wait([opened, hangup], return_when=asyncio.FIRST_COMPLETED)
        for task in (opened, hangup):
            task.cancel()
        return opened.done() and not opened.cancelled()

    @staticmethod
    async def _send_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()
