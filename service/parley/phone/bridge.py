"""One phone call's media stream mapped onto a Parley session, over gRPC.

The bridge is a client of the Parley service, like `parley talk`: for each
WebSocket the provider opens it starts a session (or attaches to the one the
call names), opens StreamAudio with the call's G.711 encoding both ways, and
then relays:

  provider media (inbound track) -> StreamAudio audio chunks, as they come
  StreamAudio frames (160 bytes, 20 ms) -> provider media messages
  ClearAudio event (the agent was interrupted) -> provider `clear`
  utterance PLAYED -> provider `mark` named after the utterance id, sent
      after the last frame that carries the utterance, so the provider
      echoes it once the caller has heard the whole utterance
  provider `mark` echo -> recorded in `heard` (utterances the caller heard)
  provider `stop`, or the socket closing -> the session it started closes
  the session closing (or the stream failing) -> the socket closes

A session the call attached to (customParameters.session) is left open when
the call ends; its owner closes it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import deque
from dataclasses import dataclass, field

import grpc
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley.audio.encodings import Encoding
from parley.cancelling import cancel_and_wait
from parley.fleet.routing import session_metadata
from parley.phone import protocol
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2, session_pb2

log = logging.getLogger("parley.phone")

MAX_ID_CHARS = 128  # streamSid, callSid: provider ids are short; they become labels and a request id
HEARD_KEPT = 64  # most recent utterances the provider confirmed as played
PROTO_ENCODINGS = {Encoding.MULAW: audio_pb2.AUDIO_ENCODING_MULAW, Encoding.ALAW: audio_pb2.AUDIO_ENCODING_ALAW}
#: WebSocket close codes (RFC 6455).
NORMAL, POLICY, UNSUPPORTED, SERVER_ERROR = 1000, 1008, 1003, 1011


@dataclass(frozen=True)
class PhoneSettings:
    """How the bridge reaches Parley and what session a call gets."""

    address: str = "127.0.0.1:50051"
    token: str = ""  # bearer token for Parley, when it has authentication on
    session_config: session_pb2.SessionConfig = field(default_factory=session_pb2.SessionConfig)
    lead_ms: int = 100  # frames sent this far ahead of real time; the provider buffers them
    start_timeout_seconds: float = 10.0  # for the provider's `start` message
    secret: str = ""  # when set, start.customParameters.secret must equal it

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


class CallRefused(Exception):
    """The call cannot go on; the socket is closed with `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class PhoneCall:
    """One WebSocket media stream <-> one session's StreamAudio."""

    def __init__(self, websocket: WebSocket, stub: pb_grpc.AgentSessionServiceStub, settings: PhoneSettings) -> None:
        self.ws = websocket
        self.stub = stub
        self.settings = settings
        self.start: protocol.Start | None = None
        self.session = ""  # the session's name, once known
        self.owned = False  # started by this call (closed when it ends)
        self.heard: deque[str] = deque(maxlen=HEARD_KEPT)  # marks echoed back: utterances the caller heard
        self.ignored_messages = 0
        self._pending_marks: list[str] = []  # PLAYED utterances whose last frames may still come
        # The stream's first message: the caller's media is relayed only after it, so a refused stream
        # ends with its own status (a write racing it turns that into INTERNAL in grpcio's asyncio client).
        self._answered = asyncio.Event()

    async def run(self) -> None:
        await self.ws.accept()
        call: grpc.aio.StreamStreamCall | None = None
        code, reason = SERVER_ERROR, "bridge stopped"
        try:
            self.start = await self._wait_for_start()
            encoding = self._check_start(self.start)
            self.session = await self._session(self.start, encoding)
            call = self.stub.StreamAudio(metadata=self.settings.metadata + session_metadata(self.session))
            g711 = audio_pb2.AudioFormat(encoding=PROTO_ENCODINGS[encoding], sample_rate_hz=8000, channels=1)
            await call.write(pb.StreamAudioRequest(config=pb.StreamConfig(
                session=self.session, input_format=g711, output_format=g711, lead_ms=self.settings.lead_ms)))
            log.info("phone call started", extra={"session": self.session, "call_sid": self.start.call_sid,
                                                  "stream_sid": self.start.stream_sid})
            await self._relay(call)
            code, reason = NORMAL, "call ended"
            log.info("phone call ended", extra={"session": self.session, "utterances_heard": len(self.heard),
                                                "ignored_messages": self.ignored_messages})
        except CallRefused as exc:
            log.warning("phone call refused", extra={"reason": exc.reason, "session": self.session})
            code, reason = exc.code, exc.reason
        except grpc.aio.AioRpcError as exc:
            log.warning("phone call failed", extra={"code": exc.code().name, "details": exc.details(),
                                                    "session": self.session})
            code, reason = SERVER_ERROR, f"parley: {exc.code().name}"
        finally:
            if call is not None:
                call.cancel()
            await self._close_session()  # before the socket, so the call's end is final when the provider sees it
            await self._close_socket(code, reason)

    # -- setting up ---------------------------------------------------------------------

    async def _wait_for_start(self) -> protocol.Start:
        try:
            async with asyncio.timeout(self.settings.start_timeout_seconds):
                while True:
                    message = await self._receive()
                    if isinstance(message, protocol.Start):
                        return message
                    if isinstance(message, protocol.Stop):
                        raise CallRefused(NORMAL, "stopped before start")
                    if message is None:
                        self.ignored_messages += 1
        except TimeoutError:
            raise CallRefused(POLICY, "no start message") from None
        except (WebSocketDisconnect, RuntimeError):
            raise CallRefused(NORMAL, "closed before start") from None

    def _check_start(self, start: protocol.Start) -> Encoding:
        secret = self.settings.secret
        if secret and not hmac.compare_digest(start.custom_parameters.get("secret", "").encode(), secret.encode()):
            raise CallRefused(POLICY, "forbidden")
        fmt = start.media_format
        encoding = protocol.MEDIA_ENCODINGS.get(fmt.encoding)
        if encoding is None or fmt.sample_rate != 8000 or fmt.channels != 1:
            raise CallRefused(UNSUPPORTED, f"unsupported media format {fmt.encoding} {fmt.sample_rate} Hz "
                                           f"x{fmt.channels}; expected audio/x-mulaw or audio/x-alaw, 8000 Hz mono")
        if not 0 < len(start.stream_sid) <= MAX_ID_CHARS or len(start.call_sid) > MAX_ID_CHARS:
            raise CallRefused(POLICY, f"streamSid (required) and callSid must be at most {MAX_ID_CHARS} characters")
        return encoding

    async def _session(self, start: protocol.Start, encoding: Encoding) -> str:
        """The session the call names (customParameters.session), or a new one."""
        named = start.custom_parameters.get("session", "")
        if named:
            return named
        config = session_pb2.SessionConfig()
        config.CopyFrom(self.settings.session_config)
        if not config.HasField("output_format"):  # mix at the phone's rate: nothing to resample on the way out
            config.output_format.CopyFrom(audio_pb2.AudioFormat(encoding=PROTO_ENCODINGS[encoding],
                                                                sample_rate_hz=8000))
        if start.call_sid:
            config.labels["phone_call_sid"] = start.call_sid
        config.labels["phone_stream_sid"] = start.stream_sid
        reply = await self.stub.Start(pb.StartRequest(config=config, request_id=f"phone-{start.stream_sid}"),
                                      metadata=self.settings.metadata)
        self.owned = True
        return reply.session.name

    # -- the call -------------------------------------------------------------------------

    async def _relay(self, call: grpc.aio.StreamStreamCall) -> None:
        """Both directions until either ends; the other is then cancelled."""
        inbound = asyncio.create_task(self._inbound(call))
        outbound = asyncio.create_task(self._outbound(call))
        done, pending = await asyncio.wait((inbound, outbound), return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait(pending)
        for task in done:
            task.result()  # a refused call or a gRPC error surfaces here

    async def _inbound(self, call: grpc.aio.StreamStreamCall) -> None:
        """Provider -> Parley, until `stop` or the socket closes (from the stream's first message on)."""
        await self._answered.wait()
        try:
            while True:
                message = await self._receive()
                if isinstance(message, protocol.Media):
                    if message.payload and message.track in protocol.CALLER_TRACKS:
                        await call.write(pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(pcm=message.payload)))
                elif isinstance(message, protocol.Mark):
                    self.heard.append(message.name)
                    log.debug("utterance heard", extra={"session": self.session, "utterance": message.name})
                elif isinstance(message, protocol.Stop):
                    return
                elif message is None:
                    self.ignored_messages += 1
        except (WebSocketDisconnect, RuntimeError):
            return

    async def _receive(self) -> protocol.Message | None:
        """The provider's next message (None: not one this protocol knows); WebSocketDisconnect at the end."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", NORMAL))
        data = message.get("text") or message.get("bytes")
        return protocol.parse(data) if data else None

    async def _outbound(self, call: grpc.aio.StreamStreamCall) -> None:
        """Parley -> provider, until the session closes (or the stream fails) or the socket ends."""
        try:
            await self._forward(call)
        except (WebSocketDisconnect, RuntimeError):
            return

    async def _forward(self, call: grpc.aio.StreamStreamCall) -> None:
        sid = self.start.stream_sid if self.start else ""
        async for response in call:
            self._answered.set()
            if response.WhichOneof("message") == "audio":
                await self._send_marks_before(response.audio.utterance_id, sid)
                await self.ws.send_text(protocol.media(sid, response.audio.pcm))
                continue
            event = response.event
            kind = event.WhichOneof("event")
            if kind == "clear_audio":
                cut = event.clear_audio.utterance_id
                self._pending_marks = [u for u in self._pending_marks if u != cut]
                await self.ws.send_text(protocol.clear(sid))
            elif kind == "session_closed":
                return  # the stream's last message; its status may yet be INTERNAL while media is written
            elif kind == "utterance_updated":
                utterance = event.utterance_updated.utterance
                if utterance.state == session_pb2.UTTERANCE_STATE_PLAYED:
                    self._pending_marks.append(utterance.id)

    async def _send_marks_before(self, utterance_id: str, sid: str) -> None:
        """Marks for played utterances go out before the first frame that no longer carries them."""
        while self._pending_marks and self._pending_marks[0] != utterance_id:
            await self.ws.send_text(protocol.mark(sid, self._pending_marks.pop(0)))

    # -- ending ---------------------------------------------------------------------------

    async def _close_session(self) -> None:
        if not (self.owned and self.session):
            return
        try:
            await self.stub.Close(pb.CloseRequest(session=self.session, reason="phone call ended"),
                                  metadata=self.settings.metadata + session_metadata(self.session), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                log.warning("closing the call's session failed",
                            extra={"session": self.session, "code": exc.code().name})

    async def _close_socket(self, code: int, reason: str) -> None:
        try:
            await self.ws.close(code=code, reason=reason[:120])
        except (RuntimeError, WebSocketDisconnect):
            pass  # already closed by the provider
