"""AgentSessionService: converts requests, delegates to the engine, converts back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from parley.api import converters as conv
from parley.api.auth import current_principal
from parley.api.call_tracing import join_session_trace
from parley.api.status import DRAIN_SECONDS, maps_errors
from parley.cancelling import cancel_and_wait
from parley.chat import ToolCall
from parley.errors import InvalidArgument
from parley.sessions.registry import AnySession, SessionRegistry
from parley.sessions.session import Session
from parley.sessions.session_types import BusyPolicy
from parley.sessions.stream import AttachedStream, OutFrame
from parley.sessions.utterance import Utterance
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2

RECORDING_CHUNK = 64 * 1024


def owner_of(context: grpc.aio.ServicerContext) -> str:
    """The principal that makes the call ("" when authentication is off); set by AuthInterceptor."""
    return current_principal()


async def _once(session: Session, method: str, request: Any, action: Callable[[], Awaitable[Any]]) -> Any:
    """Run a mutating call once per request_id; the id reused with another request is INVALID_ARGUMENT."""
    return await session.idempotent(method, request.request_id, action, conv.request_fingerprint(request))


class AgentSessionServicer(pb_grpc.AgentSessionServiceServicer):
    def __init__(self, registry: SessionRegistry) -> None:
        self.registry = registry

    def _session(self, name: str, context: grpc.aio.ServicerContext, field: str = "session") -> AnySession:
        """The caller's session by name; a traced call joins its trace."""
        session = self.registry.get(name, owner=owner_of(context), field=field)
        if isinstance(session, Session):
            join_session_trace(session.observer)
        return session

    def _active(self, name: str, context: grpc.aio.ServicerContext, field: str = "session") -> Session:
        """The caller's open session (FailedPrecondition once closed), counted against its request rate."""
        return self.registry.use(self._session(name, context, field))

    @staticmethod
    def _session_proto(session: AnySession, *, full: bool = True) -> session_pb2.Session:
        return conv.session_to_proto(session.snapshot(full=full), session.idle_ttl_seconds)

    # -- resources ------------------------------------------------------------------

    @maps_errors
    async def Start(self, request: pb.StartRequest, context: grpc.aio.ServicerContext) -> pb.StartResponse:
        config = conv.config_from_proto(request.config)
        session = await self.registry.start(config, owner=owner_of(context), request_id=request.request_id,
                                            fingerprint=conv.request_fingerprint(request))
        return pb.StartResponse(session=self._session_proto(session))

    @maps_errors
    async def Get(self, request: pb.GetRequest, context: grpc.aio.ServicerContext) -> pb.GetResponse:
        session = self._session(request.session, context)
        return pb.GetResponse(session=self._session_proto(session))

    @maps_errors
    async def List(self, request: pb.ListRequest, context: grpc.aio.ServicerContext) -> pb.ListResponse:
        page = self.registry.list(owner=owner_of(context), page_size=request.page_size, page_token=request.page_token)
        return pb.ListResponse(
            sessions=[self._session_proto(s, full=False) for s in page.sessions], next_page_token=page.next_page_token
        )

    @maps_errors
    async def Close(self, request: pb.CloseRequest, context: grpc.aio.ServicerContext) -> pb.CloseResponse:
        farewell = conv.farewell_from_proto(request)
        self._session(request.session, context)
        session = await self.registry.close(
            request.session, owner=owner_of(context), reason=request.reason,
            farewell=farewell[0] if farewell else None, farewell_timeout=farewell[1] if farewell else 0.0,
        )
        return pb.CloseResponse(session=self._session_proto(session))

    # -- speech -------------------------------------------------------------------------

    @maps_errors
    async def Say(self, request: pb.SayRequest, context: grpc.aio.ServicerContext) -> pb.SayResponse:
        session = self._active(request.session, context)
        interruptible = request.interruptible if request.HasField("interruptible") else True
        add_to_context = request.add_to_context if request.HasField("add_to_context") else True

        async def say() -> Utterance:
            return session.say(request.text, interruptible=interruptible, add_to_context=add_to_context)

        utterance = await _once(session, "Say", request, say)
        return pb.SayResponse(utterance=conv.utterance_to_proto(utterance.snapshot()))

    @maps_errors
    async def Reply(self, request: pb.ReplyRequest, context: grpc.aio.ServicerContext) -> pb.ReplyResponse:
        session = self._active(request.session, context)
        busy = conv.enum_from_proto(BusyPolicy, pb.BusyPolicy, request.busy_policy, "busy_policy", BusyPolicy.QUEUE)
        interruptible = request.interruptible if request.HasField("interruptible") else True

        async def reply() -> Utterance:
            return session.reply(
                instructions=request.instructions, user_text=request.user_text, busy=busy, interruptible=interruptible
            )

        utterance = await _once(session, "Reply", request, reply)
        return pb.ReplyResponse(utterance=conv.utterance_to_proto(utterance.snapshot()))

    @maps_errors
    async def Interrupt(self, request: pb.InterruptRequest, context: grpc.aio.ServicerContext) -> pb.InterruptResponse:
        session = self._active(request.session, context)
        scope = conv.interrupt_scope_from_proto(request.scope)

        async def interrupt() -> list[Utterance]:
            return session.interrupt(force=request.force, include_queued=scope, fade_ms=request.fade_ms)

        cut = await _once(session, "Interrupt", request, interrupt)
        return pb.InterruptResponse(interrupted=[conv.utterance_to_proto(u.snapshot()) for u in cut])

    @maps_errors
    async def WaitUtterance(
        self, request: pb.WaitUtteranceRequest, context: grpc.aio.ServicerContext
    ) -> pb.WaitUtteranceResponse:
        session = self._session(request.session, context)
        snapshot = await session.wait_utterance(request.utterance_id)
        return pb.WaitUtteranceResponse(utterance=conv.utterance_to_proto(snapshot))

    @maps_errors
    async def SubmitToolResult(
        self, request: pb.SubmitToolResultRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitToolResultResponse:
        session = self._active(request.session, context)
        outcome = request.WhichOneof("outcome")
        if outcome is None:
            raise InvalidArgument("outcome", "set result or error")

        async def submit() -> ToolCall:
            text = request.result if outcome == "result" else request.error
            return session.submit_tool_result(request.tool_call_id, text, outcome == "error")

        call = await _once(session, "SubmitToolResult", request, submit)
        return pb.SubmitToolResultResponse(call=conv.tool_call_to_proto(call))

    # -- layers ----------------------------------------------------------------------------

    @maps_errors
    async def PlayBackgroundAudio(
        self, request: pb.PlayBackgroundAudioRequest, context: grpc.aio.ServicerContext
    ) -> pb.PlayBackgroundAudioResponse:
        session = self._active(request.session, context)
        layer = conv.layer_from_proto(request.layer, "layer") if request.HasField("layer") else None
        status = await _once(session, "PlayBackgroundAudio", request,
                             lambda: session.play_background(layer, request.override_thinking))
        return pb.PlayBackgroundAudioResponse(background_audio=conv.layer_status_to_proto(status))

    @maps_errors
    async def StopBackgroundAudio(
        self, request: pb.StopBackgroundAudioRequest, context: grpc.aio.ServicerContext
    ) -> pb.StopBackgroundAudioResponse:
        session = self._active(request.session, context)
        status = session.stop_background(request.fade_ms)
        return pb.StopBackgroundAudioResponse(background_audio=conv.layer_status_to_proto(status))

    @maps_errors
    async def StartThinkingAudio(
        self, request: pb.StartThinkingAudioRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartThinkingAudioResponse:
        session = self._active(request.session, context)
        layer = conv.layer_from_proto(request.layer, "layer") if request.HasField("layer") else None
        status = await _once(session, "StartThinkingAudio", request,
                             lambda: session.start_thinking(layer, request.layer_over_background))
        return pb.StartThinkingAudioResponse(thinking_audio=conv.layer_status_to_proto(status))

    @maps_errors
    async def StopThinkingAudio(
        self, request: pb.StopThinkingAudioRequest, context: grpc.aio.ServicerContext
    ) -> pb.StopThinkingAudioResponse:
        session = self._active(request.session, context)
        status = session.stop_thinking(request.fade_ms)
        return pb.StopThinkingAudioResponse(thinking_audio=conv.layer_status_to_proto(status))

    # -- streams -------------------------------------------------------------------------------

    @maps_errors
    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        session = self._active(request.session, context)
        async for event in session.bus.subscribe():
            yield pb.WatchEventsResponse(event=conv.event_to_proto(event))

    @maps_errors
    async def GetRecording(
        self, request: pb.GetRecordingRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GetRecordingResponse]:
        recording = self.registry.recording(request.session, owner=owner_of(context))
        if request.format == pb.RECORDING_FORMAT_OGG_OPUS:
            encoded = await recording.ogg_opus()
            yield pb.GetRecordingResponse(info=conv.recording_info_to_proto(recording.info("audio/ogg")))
            for start in range(0, len(encoded), RECORDING_CHUNK):
                yield pb.GetRecordingResponse(data=encoded[start:start + RECORDING_CHUNK])
            return
        yield pb.GetRecordingResponse(info=conv.recording_info_to_proto(recording.info()))
        async for chunk in recording.wav_chunks():
            yield pb.GetRecordingResponse(data=chunk)

    @maps_errors
    async def StreamAudio(
        self, requests: AsyncIterator[pb.StreamAudioRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamAudioResponse]:
        first = await anext(aiter(requests), None)
        if first is None or first.WhichOneof("message") != "config":
            raise InvalidArgument("config", "the first StreamAudio message must be config")
        session = self._active(first.config.session, context, "config.session")
        spec = conv.stream_spec_from_proto(first.config, session.config.output_format)
        stream = session.attach_stream(spec, take_over=first.config.take_over)
        reader = asyncio.create_task(self._read_audio(requests, session, stream))
        try:
            while (item := await stream.outbox.get()) is not None:
                if isinstance(item, OutFrame):
                    yield conv.frame_to_proto(item)
                else:
                    yield pb.StreamAudioResponse(event=conv.event_to_proto(item))
            # The stream ended (the session closed): give the caller a moment to stop writing before the
            # status goes out; a client still writing when it arrives may report INTERNAL instead (grpcio).
            await asyncio.wait([reader], timeout=DRAIN_SECONDS)
        finally:
            await cancel_and_wait([reader])
            session.detach_stream(stream)

    @staticmethod
    async def _read_audio(
        requests: AsyncIterator[pb.StreamAudioRequest], session: Session, stream: AttachedStream
    ) -> None:
        """Feed the caller's chunks to the session; a bad message fails the stream."""
        try:
            async for message in requests:
                if message.WhichOneof("message") != "audio":
                    raise InvalidArgument("config", "config may only be the first message of a stream")
                session.push_audio(stream, message.audio.pcm)
        except InvalidArgument as exc:
            stream.outbox.fail(exc)
