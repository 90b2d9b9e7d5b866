"""One browser tab = one session: the WebSocket's messages become calls on the gRPC service.

The tab's session starts with its "start" message and is closed when the tab
goes (the WebSocket ends for any reason) or the page says "close". Frames and
events of the session's StreamAudio call go to the page as they come; the
bridge buffers nothing itself, so a slow page slows the call and the server's
bounded outbox drops frames (and says so with a frames_dropped event).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

import grpc
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley.cancelling import cancel_and_wait
from parley.fleet.routing import session_metadata
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import audio_pb2
from parley.web.client import ParleyClient, error_frame
from parley.web.protocol import (
    Close,
    Command,
    Interrupt,
    Layer,
    PageError,
    Say,
    Start,
    as_json,
    check_audio,
    event_frame,
    parse,
    request_type,
)

log = logging.getLogger("parley.web")

TAB_CLOSED = "browser tab closed"
PAGE_CLOSED = "closed from the page"
# What a send to a page that went away raises (Starlette's, the ASGI server's).
GONE = (WebSocketDisconnect, RuntimeError, OSError)


class Tab:
    """The bridge for one WebSocket connection."""

    def __init__(self, websocket: WebSocket, client: ParleyClient) -> None:
        self.websocket = websocket
        self.client = client
        self.session = ""
        self.input_rate = 0
        self._call: grpc.aio.StreamStreamCall | None = None
        self._forward: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._ended = asyncio.Event()  # the session's stream ended: the tab is done
        # The stream's first message (or its end): microphone audio is written only after it, so a refused
        # stream ends with its own status (a write racing it turns that into INTERNAL in grpcio's asyncio client).
        self._answered = asyncio.Event()
        self._end_reason = TAB_CLOSED

    async def run(self) -> None:
        """Serve the page until it goes or its session ends; the session is closed either way."""
        receiving = asyncio.create_task(self._receive())
        ended = asyncio.create_task(self._ended.wait())
        try:
            await asyncio.wait((receiving, ended), return_when=asyncio.FIRST_COMPLETED)
            if receiving.done() and not receiving.cancelled():
                failure = receiving.exception()
                if failure is not None and not isinstance(failure, GONE):
                    log.error("tab failed", exc_info=failure, extra={"session": self.session})
        finally:
            await cancel_and_wait([receiving, ended])
            await self._release(self._end_reason)
            with contextlib.suppress(*GONE):
                await self.websocket.close(1000)

    async def _receive(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await self._on_audio(message["bytes"])
            elif message.get("text") is not None:
                await self._on_text(message["text"])

    async def _on_text(self, text: str) -> None:
        request = request_type(text)
        try:
            command = parse(text)
            result = await self._run(command)
        except PageError as exc:
            await self._send_json(exc.frame(request))
            return
        except grpc.aio.AioRpcError as exc:
            await self._send_json(error_frame(exc, request))
            return
        if result is not None:
            await self._send_json({"type": "result", "request": request, "result": as_json(result)})

    async def _run(self, command: Command) -> Any:
        if isinstance(command, Start):
            await self._start(command)
            return None
        if not self.session:
            raise PageError("type", "start a session first", code="FAILED_PRECONDITION")
        stub, name, timeout = self.client.stub, self.session, self.client.settings.call_timeout
        metadata = self.client.metadata + session_metadata(name)  # the header a proxy routes the session by
        if isinstance(command, Say):
            return await stub.Say(pb.SayRequest(session=name, text=command.text, request_id=_request_id()),
                                  metadata=metadata, timeout=timeout)
        if isinstance(command, Interrupt):
            return await stub.Interrupt(pb.InterruptRequest(session=name, request_id=_request_id()),
                                        metadata=metadata, timeout=timeout)
        if isinstance(command, Layer):
            return await _layer_call(stub, name, command, metadata, timeout)
        if isinstance(command, Close):  # the stream then ends with session_closed, and the tab with it
            return await stub.Close(pb.CloseRequest(session=name, reason=PAGE_CLOSED, request_id=_request_id()),
                                    metadata=metadata, timeout=timeout)
        raise AssertionError(command)

    async def _start(self, command: Start) -> None:
        if self.session:
            raise PageError("type", f"this connection already has a session ({self.session}); one tab, one session",
                            code="FAILED_PRECONDITION")
        s = self.client.settings
        started = await self.client.stub.Start(pb.StartRequest(config=command.config, request_id=_request_id()),
                                               metadata=self.client.metadata, timeout=s.start_timeout)
        self.session = started.session.name
        self.input_rate = command.input_rate
        log.info("tab session started", extra={"session": self.session})
        call = self.client.stub.StreamAudio(metadata=self.client.metadata + session_metadata(self.session))
        self._call = call
        stream_config = pb.StreamConfig(session=self.session,
                                        input_format=audio_pb2.AudioFormat(sample_rate_hz=command.input_rate))
        if command.output_rate:
            stream_config.output_format.sample_rate_hz = command.output_rate
        await call.write(pb.StreamAudioRequest(config=stream_config))
        await self._send_json({"type": "session", "session": as_json(started.session)})
        self._forward = asyncio.create_task(self._forward_stream(call))

    async def _forward_stream(self, call: grpc.aio.StreamStreamCall) -> None:
        """The call's frames and events to the page, until the session closes or the call fails."""
        reason = "the session's audio stream ended"
        try:
            async for response in call:
                self._answered.set()
                if response.WhichOneof("message") == "audio":
                    async with self._send_lock:
                        await self.websocket.send_bytes(response.audio.pcm)
                    continue
                event = response.event
                await self._send_json(event_frame(event))
                if event.WhichOneof("event") == "session_closed":
                    # The stream's last message: stop here. Its status may yet come as INTERNAL, because
                    # the microphone's chunks are still being written as it arrives (grpcio).
                    reason = event.session_closed.reason
                    break
        except grpc.aio.AioRpcError as exc:
            reason = f"the audio stream failed: {exc.code().name}"
            self._end_reason = reason
            with contextlib.suppress(*GONE):
                await self._send_json(error_frame(exc, "stream"))
        except GONE:
            pass  # the page went; run() closes the session
        with contextlib.suppress(*GONE):
            await self._send_json({"type": "closed", "reason": reason})
        self._answered.set()
        self._ended.set()

    async def _on_audio(self, data: bytes) -> None:
        try:
            if self._call is None:
                raise PageError("audio", "start a session before sending audio", code="FAILED_PRECONDITION")
            check_audio(data, self.input_rate)
        except PageError as exc:
            await self._send_json(exc.frame("audio"))
            return
        await self._answered.wait()
        try:
            await self._call.write(pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(pcm=data)))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the call has ended; the forwarding task reports why

    async def _send_json(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.websocket.send_text(json.dumps(frame))

    async def _release(self, reason: str) -> None:
        """End the call and close the session (idempotent: it may have closed already); never raises."""
        if self._forward is not None:
            await cancel_and_wait([self._forward])
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
        name, self.session = self.session, ""
        if not name:
            return
        try:
            await self.client.stub.Close(pb.CloseRequest(session=name, reason=reason),
                                         metadata=self.client.metadata + session_metadata(name),
                                         timeout=self.client.settings.call_timeout)
            log.info("tab session closed", extra={"session": name, "reason": reason})
        except grpc.aio.AioRpcError as exc:
            log.warning("could not close a tab's session",
                        extra={"session": name, "code": exc.code().name, "details": exc.details()})


async def _layer_call(stub: Any, name: str, command: Layer, metadata: Any, timeout: float) -> Any:
    if command.name == "background":
        if command.play:
            return await stub.PlayBackgroundAudio(pb.PlayBackgroundAudioRequest(session=name, request_id=_request_id()),
                                                  metadata=metadata, timeout=timeout)
        return await stub.StopBackgroundAudio(pb.StopBackgroundAudioRequest(session=name, request_id=_request_id()),
                                              metadata=metadata, timeout=timeout)
    if command.play:
        return await stub.StartThinkingAudio(pb.StartThinkingAudioRequest(session=name, request_id=_request_id()),
                                             metadata=metadata, timeout=timeout)
    return await stub.StopThinkingAudio(pb.StopThinkingAudioRequest(session=name, request_id=_request_id()),
                                        metadata=metadata, timeout=timeout)


def _request_id() -> str:
    return uuid.uuid4().hex

