"""Bad input, one table: each row is a request (or a stream sequence) and the exact status it gets.

One real server serves the whole table. A control session plays speech into
its own StreamAudio call the whole time; after every row the server must
still answer health and Get, the control stream must still be receiving, and
its frame sequence numbers must have no gap (not one frame skipped).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf
from grpc_health.v1 import health_pb2, health_pb2_grpc

from parley.server import ParleyServer
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2, session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS, StreamClient, open_stream
from tests.reliability.support import ErrorLog, Outcome, contiguous, outcome_of, stream_outcome, wait_frames

pytestmark = pytest.mark.asyncio(loop_scope="module")

OK, INVALID, NOT_FOUND = grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
PRECONDITION, EXHAUSTED, ABORTED = (
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
)
MULAW, ALAW = audio_pb2.AUDIO_ENCODING_MULAW, audio_pb2.AUDIO_ENCODING_ALAW
LIMITS = dict(
    max_chunk_bytes=4096, max_message_bytes=64 * 1024, max_subscribers=2, max_queued_utterances=2, max_tools=3,
    max_requests_per_second=5.0, request_burst=20, max_sessions_per_principal=6, max_layer_file_bytes=20_000,
)
TOOL_LLM = session_pb2.ProvidersConfig(
    tts=STAND_IN_PROVIDERS.tts, stt=STAND_IN_PROVIDERS.stt, vad=STAND_IN_PROVIDERS.vad,
    llm=session_pb2.ProviderSpec(name="echo", options={"tool_calls": [{"name": "lookup"}]}),
)


@dataclass
class Ctx:
    stub: pb_grpc.AgentSessionServiceStub
    server: ParleyServer
    session: str  # a fresh live session (stand-in providers) for this row


@dataclass(frozen=True)
class Row:
    id: str
    call: Callable[[Ctx], Awaitable[Outcome]]
    code: grpc.StatusCode
    field: str = ""  # BadRequest field, for INVALID_ARGUMENT
    reason: str = ""  # ErrorInfo reason
    limit: str = ""  # ErrorInfo metadata "limit", for RESOURCE_EXHAUSTED
    message: str = ""  # a part of the status message, for statuses gRPC itself produces


# -- building blocks -----------------------------------------------------------------------------------


def config_msg(session: str, **fmt) -> pb.StreamAudioRequest:
    out = fmt.pop("output", None)
    lead = fmt.pop("lead_ms", 0)
    config = pb.StreamConfig(session=session, input_format=audio_pb2.AudioFormat(**fmt), lead_ms=lead)
    if out is not None:
        config.output_format.CopyFrom(audio_pb2.AudioFormat(**out))
    return pb.StreamAudioRequest(config=config)


def audio_msg(pcm: bytes) -> pb.StreamAudioRequest:
    return pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(pcm=pcm))


SILENCE_20MS = bytes(640)


def stream(*messages: Callable[[Ctx], pb.StreamAudioRequest]) -> Callable[[Ctx], Awaitable[Outcome]]:
    return lambda c: stream_outcome(c.stub, [m(c) for m in messages])


def cfg(**fmt) -> Callable[[Ctx], pb.StreamAudioRequest]:
    return lambda c: config_msg(c.session, **fmt)


def chunk(pcm: bytes) -> Callable[[Ctx], pb.StreamAudioRequest]:
    return lambda c: audio_msg(pcm)


def start(**config) -> Callable[[Ctx], Awaitable[Outcome]]:
    config.setdefault("providers", STAND_IN_PROVIDERS)
    return lambda c: outcome_of(c.stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(**config))))


def unary(method: str, request_type, **fields) -> Callable[[Ctx], Awaitable[Outcome]]:
    """A call on the row's session."""
    return lambda c: outcome_of(getattr(c.stub, method)(request_type(session=c.session, **fields)))


def bg(**layer) -> Callable[[Ctx], Awaitable[Outcome]]:
    return unary("PlayBackgroundAudio", pb.PlayBackgroundAudioRequest, layer=session_pb2.AudioLayerConfig(**layer))


async def first_failure(calls: list[Awaitable[object]]) -> Outcome:
    """Run calls one after another; the first that fails (or OK if none does)."""
    for call in calls:
        outcome = await outcome_of(call)
        if outcome.code is not OK:
            return outcome
    return Outcome(OK)


async def after_close(c: Ctx, call: Callable[[Ctx], Awaitable[Outcome]]) -> Outcome:
    await c.stub.Close(pb.CloseRequest(session=c.session))
    return await call(c)


async def second_stream(c: Ctx) -> Outcome:
    first = await open_stream(c.stub, c.session)
    try:
        await wait_frames(first, 0)
        return await stream_outcome(c.stub, [config_msg(c.session)])
    finally:
        await first.aclose()


async def too_many_watchers(c: Ctx) -> Outcome:
    watchers = [c.stub.WatchEvents(pb.WatchEventsRequest(session=c.session)) for _ in range(LIMITS["max_subscribers"])]
    live = c.server.registry.get(c.session)
    try:
        while len(live.bus._subscribers) < len(watchers):  # the watchers' subscriptions are in place
            await asyncio.sleep(0.01)
        return await outcome_of(anext(aiter(c.stub.WatchEvents(pb.WatchEventsRequest(session=c.session)))))
    finally:
        for w in watchers:
            w.cancel()


async def full_queue(c: Ctx) -> Outcome:
    say = pb.SayRequest(session=c.session, text="a long sentence that keeps the agent busy " * 4)
    return await first_failure([c.stub.Say(say) for _ in range(LIMITS["max_queued_utterances"] + 2)])


async def burst(c: Ctx) -> Outcome:
    interrupt = pb.InterruptRequest(session=c.session)
    return await first_failure([c.stub.Interrupt(interrupt) for _ in range(LIMITS["request_burst"] + 5)])


async def many_sessions(c: Ctx) -> Outcome:
    request = pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS))
    return await first_failure([c.stub.Start(request) for _ in range(LIMITS["max_sessions_per_principal"] + 1)])


async def tool_session(c: Ctx) -> str:
    config = session_pb2.SessionConfig(providers=TOOL_LLM, tools=[session_pb2.ToolDefinition(name="lookup")])
    session = (await c.stub.Start(pb.StartRequest(config=config))).session.name
    await c.stub.Reply(pb.ReplyRequest(session=session, user_text="look it up"))
    return session


async def submit_until_pending(c: Ctx, session: str) -> None:
    """Submit the model's tool call ("call_0") as soon as it is pending."""
    request = pb.SubmitToolResultRequest(session=session, tool_call_id="call_0", result="42")
    while (outcome := await outcome_of(c.stub.SubmitToolResult(request))).code is INVALID:
        await asyncio.sleep(0.01)
    assert outcome.code is OK, outcome


async def result_twice(c: Ctx) -> Outcome:
    session = await tool_session(c)
    await submit_until_pending(c, session)
    return await outcome_of(c.stub.SubmitToolResult(
        pb.SubmitToolResultRequest(session=session, tool_call_id="call_0", result="43")))


async def reused_say_id(c: Ctx) -> Outcome:
    await c.stub.Say(pb.SayRequest(session=c.session, text="one", request_id="say-once"))
    return await outcome_of(c.stub.Say(pb.SayRequest(session=c.session, text="two", request_id="say-once")))


async def reused_start_id(c: Ctx) -> Outcome:
    def start(instructions: str) -> pb.StartRequest:
        return pb.StartRequest(request_id="start-once", config=session_pb2.SessionConfig(
            instructions=instructions, providers=STAND_IN_PROVIDERS))

    await c.stub.Start(start("be brief"))
    return await outcome_of(c.stub.Start(start("be verbose")))


def tools(n: int) -> list[session_pb2.ToolDefinition]:
    return [session_pb2.ToolDefinition(name=f"tool{i}") for i in range(n)]


# -- the table ---------------------------------------------------------------------------------------

ROWS = [
    # StreamAudio: order and framing
    Row("audio before config", stream(chunk(SILENCE_20MS)), INVALID, field="config"),
    Row("no message at all", stream(), INVALID, field="config"),
    Row("config twice", stream(cfg(), cfg()), INVALID, field="config"),
    Row("config after audio", stream(cfg(), chunk(SILENCE_20MS), cfg()), INVALID, field="config"),
    Row("unknown session in stream", stream(lambda c: config_msg("sessions/nobody")), NOT_FOUND,
        reason="SESSION_NOT_FOUND"),
    Row("malformed session in stream", stream(lambda c: config_msg("sessions/../x")), INVALID,
        field="config.session"),
    Row("odd byte length PCM", stream(cfg(), chunk(bytes(641))), INVALID, field="audio.pcm"),
    Row("stereo chunk with half a frame", stream(cfg(channels=2), chunk(bytes(6))), INVALID, field="audio.pcm"),
    Row("empty chunk", stream(cfg(), chunk(b"")), INVALID, field="audio.pcm"),
    Row("chunk over max_chunk_bytes", stream(cfg(), chunk(bytes(4098))), INVALID, field="audio.pcm"),
    Row("chunk over max_message_bytes", stream(cfg(), chunk(bytes(70_000))), EXHAUSTED, message="larger than max"),
    Row("input rate too low", stream(cfg(sample_rate_hz=4000)), INVALID, field="config.input_format.sample_rate_hz"),
    Row("input rate too high", stream(cfg(sample_rate_hz=96000)), INVALID,
        field="config.input_format.sample_rate_hz"),
    Row("input rate 7999 followed at once by audio", stream(cfg(sample_rate_hz=7999), *[chunk(SILENCE_20MS)] * 20),
        INVALID, field="config.input_format.sample_rate_hz"),
    Row("input rate 192000 followed at once by audio", stream(cfg(sample_rate_hz=192000),
                                                              *[chunk(SILENCE_20MS)] * 20),
        INVALID, field="config.input_format.sample_rate_hz"),
    Row("negative input rate", stream(cfg(sample_rate_hz=-16000)), INVALID,
        field="config.input_format.sample_rate_hz"),
    Row("three input channels", stream(cfg(channels=3)), INVALID, field="config.input_format.channels"),
    Row("unknown encoding number", stream(cfg(encoding=7)), INVALID, field="config.input_format.encoding"),
    Row("output rate 44100", stream(cfg(output={"sample_rate_hz": 44100})), INVALID,
        field="config.output_format.sample_rate_hz"),
    Row("output frame 30 ms", stream(cfg(output={"frame_ms": 30})), INVALID, field="config.output_format.frame_ms"),
    Row("output encoding number", stream(cfg(output={"encoding": 99})), INVALID,
        field="config.output_format.encoding"),
    Row("lead over 500 ms", stream(cfg(lead_ms=600)), INVALID, field="config.lead_ms"),
    Row("µ-law input at 16 kHz", stream(cfg(encoding=MULAW, sample_rate_hz=16000)), INVALID,
        field="config.input_format.sample_rate_hz"),
    Row("stereo A-law input", stream(cfg(encoding=ALAW, channels=2)), INVALID, field="config.input_format.channels"),
    Row("µ-law output at 24 kHz", stream(cfg(output={"encoding": MULAW, "sample_rate_hz": 24000})), INVALID,
        field="config.output_format.sample_rate_hz"),
    Row("stereo µ-law output", stream(cfg(output={"encoding": MULAW, "channels": 2})), INVALID,
        field="config.output_format.channels"),
    Row("A-law session output at 16 kHz",
        start(output_format=audio_pb2.AudioFormat(encoding=ALAW, sample_rate_hz=16000)), INVALID,
        field="config.output_format.sample_rate_hz"),
    Row("second stream without take_over", second_stream, ABORTED, reason="STREAM_ATTACHED"),
    # text
    Row("empty text", unary("Say", pb.SayRequest, text=""), INVALID, field="text"),
    Row("whitespace text", unary("Say", pb.SayRequest, text=" \n\t "), INVALID, field="text"),
    Row("giant text", unary("Say", pb.SayRequest, text="a" * 4001), INVALID, field="text"),
    Row("control characters", unary("Say", pb.SayRequest, text="hello\x00\x1b[2J"), INVALID, field="text"),
    Row("text over max_message_bytes", unary("Say", pb.SayRequest, text="a" * 70_000), EXHAUSTED,
        message="larger than max"),
    Row("giant reply instructions", unary("Reply", pb.ReplyRequest, instructions="x" * 5000), INVALID,
        field="instructions"),
    Row("control characters in user_text", unary("Reply", pb.ReplyRequest, user_text="hi\x07"), INVALID,
        field="user_text"),
    # enums
    Row("unknown busy_policy", unary("Reply", pb.ReplyRequest, busy_policy=42), INVALID, field="busy_policy"),
    Row("unknown interrupt scope", unary("Interrupt", pb.InterruptRequest, scope=-3), INVALID, field="scope"),
    Row("unknown layer mode", bg(mode=9), INVALID, field="layer.mode"),
    Row("unknown interruption mode", start(interruption=session_pb2.InterruptionConfig(mode=77)), INVALID,
        field="config.interruption.mode"),
    # numbers: negative, NaN, infinite
    Row("negative fade_ms", unary("Interrupt", pb.InterruptRequest, fade_ms=-1), INVALID, field="fade_ms"),
    Row("negative stop fade", unary("StopBackgroundAudio", pb.StopBackgroundAudioRequest, fade_ms=-5), INVALID,
        field="fade_ms"),
    Row("negative gain", bg(gain=-0.5), INVALID, field="layer.gain"),
    Row("NaN gain", bg(gain=math.nan), INVALID, field="layer.gain"),
    Row("infinite gain", bg(gain=math.inf), INVALID, field="layer.gain"),
    Row("negative fade in", bg(fade_in_ms=-10), INVALID, field="layer.fade_in_ms"),
    Row("NaN duration", start(interruption=session_pb2.InterruptionConfig(min_duration_seconds=math.nan)), INVALID,
        field="config.interruption.min_duration_seconds"),
    Row("negative wake-up", start(wake_up=session_pb2.WakeUpConfig(after_seconds=-1)), INVALID,
        field="config.wake_up.after_seconds"),
    Row("infinite reattach window", start(reattach_window_seconds=math.inf), INVALID,
        field="config.reattach_window_seconds"),
    Row("NaN background gain at Start",
        start(background_audio=session_pb2.BackgroundAudioConfig(layer=session_pb2.AudioLayerConfig(gain=math.nan))),
        INVALID, field="config.background_audio.layer.gain"),
    Row("negative page size", lambda c: outcome_of(c.stub.List(pb.ListRequest(page_size=-1))), INVALID,
        field="page_size"),
    Row("forged page token", lambda c: outcome_of(c.stub.List(pb.ListRequest(page_token="bm9wZQ=="))), INVALID,
        field="page_token"),
    # layer files
    Row("server path outside the audio folder", bg(source="/etc/passwd"), INVALID, field="layer.source",
        reason="SOURCE_NOT_ALLOWED"),
    Row("climbing out of the audio folder", bg(source="../../etc/hostname"), INVALID, field="layer.source",
        reason="SOURCE_NOT_ALLOWED"),
    Row("missing file", bg(source="nope.wav"), INVALID, field="layer.source"),
    Row("file over max_layer_file_bytes", bg(source="big.wav"), INVALID, field="layer.source",
        reason="LIMIT_EXCEEDED"),
    Row("corrupt file", bg(source="corrupt.wav"), INVALID, field="layer.source"),
    Row("unknown builtin", bg(source="builtin:nope"), INVALID, field="layer.source"),
    Row("file source at Start",
        start(background_audio=session_pb2.BackgroundAudioConfig(layer=session_pb2.AudioLayerConfig(source="/etc/passwd"))),
        INVALID, field="config.background_audio.layer.source"),
    Row("text file as background at Start", start(background_audio=session_pb2.BackgroundAudioConfig(
        layer=session_pb2.AudioLayerConfig(source="notes.txt"))), INVALID, field="config.background_audio.layer.source"),
    Row("corrupt file as thinking sound at Start", start(thinking_audio=session_pb2.ThinkingAudioConfig(
        layer=session_pb2.AudioLayerConfig(source="corrupt.wav"))), INVALID, field="config.thinking_audio.layer.source"),
    Row("unknown builtin at Start", start(background_audio=session_pb2.BackgroundAudioConfig(
        layer=session_pb2.AudioLayerConfig(source="builtin:nope"))), INVALID, field="config.background_audio.layer.source"),
    Row("a file in the audio folder plays", bg(source="tone.wav"), OK),
    Row("a file in the audio folder is accepted at Start", start(background_audio=session_pb2.BackgroundAudioConfig(
        layer=session_pb2.AudioLayerConfig(source="tone.wav"))), OK),
    # tools
    Row("unknown tool call id", unary("SubmitToolResult", pb.SubmitToolResultRequest, tool_call_id="call_x",
                                      result="1"), INVALID, field="tool_call_id"),
    Row("tool result without outcome", unary("SubmitToolResult", pb.SubmitToolResultRequest, tool_call_id="c"),
        INVALID, field="outcome"),
    Row("tool result submitted twice", result_twice, PRECONDITION, reason="TOOL_CALL_ANSWERED"),
    Row("duplicate tool names", start(tools=[session_pb2.ToolDefinition(name="t")] * 2), INVALID,
        field="config.tools[1].name"),
    Row("tools over max_tools", start(tools=tools(4)), EXHAUSTED, limit="max_tools"),
    # limits
    Row("queued utterances over max_queued_utterances", full_queue, EXHAUSTED, limit="max_queued_utterances"),
    Row("watchers over max_subscribers", too_many_watchers, EXHAUSTED, limit="max_subscribers"),
    Row("requests over the per-session rate", burst, EXHAUSTED, limit="max_requests_per_second"),
    Row("sessions over max_sessions_per_principal", many_sessions, EXHAUSTED, limit="max_sessions_per_principal"),
    Row("null provider option", start(providers=session_pb2.ProvidersConfig(
        tts=session_pb2.ProviderSpec(name="tone", options={"frequency": None}), stt=STAND_IN_PROVIDERS.stt,
        vad=STAND_IN_PROVIDERS.vad, llm=STAND_IN_PROVIDERS.llm)), INVALID,
        field="config.providers.tts.options.frequency"),
    Row("unknown provider", start(providers=session_pb2.ProvidersConfig(tts=session_pb2.ProviderSpec(name="x"))),
        INVALID, field="config.providers.tts.name"),
    # idempotency (AIP-155): a request_id names one request
    Row("request_id reused for another Say", reused_say_id, INVALID, field="request_id", reason="REQUEST_ID_REUSED"),
    Row("request_id reused for another Start config", reused_start_id, INVALID, field="request_id",
        reason="REQUEST_ID_REUSED"),
    # state
    Row("interrupt on an idle session", unary("Interrupt", pb.InterruptRequest), OK),
    Row("unknown utterance id", unary("WaitUtterance", pb.WaitUtteranceRequest, utterance_id="u999"), INVALID,
        field="utterance_id"),
    Row("unknown session", lambda c: outcome_of(c.stub.Get(pb.GetRequest(session="sessions/nobody"))), NOT_FOUND,
        reason="SESSION_NOT_FOUND"),
    Row("farewell without action", unary("Close", pb.CloseRequest, farewell=pb.Farewell()), INVALID,
        field="farewell.action"),
    Row("Say after Close", lambda c: after_close(c, unary("Say", pb.SayRequest, text="hi")), PRECONDITION,
        reason="SESSION_CLOSED"),
    Row("Interrupt after Close", lambda c: after_close(c, unary("Interrupt", pb.InterruptRequest)), PRECONDITION,
        reason="SESSION_CLOSED"),
    Row("tool result after Close", lambda c: after_close(c, unary(
        "SubmitToolResult", pb.SubmitToolResultRequest, tool_call_id="call_0", result="1")), PRECONDITION,
        reason="SESSION_CLOSED"),
    Row("stream after Close", lambda c: after_close(c, stream(cfg())), PRECONDITION, reason="SESSION_CLOSED"),
    Row("watch after Close", lambda c: after_close(c, lambda c: outcome_of(anext(aiter(
        c.stub.WatchEvents(pb.WatchEventsRequest(session=c.session)))))), PRECONDITION, reason="SESSION_CLOSED"),
    Row("Close after Close", lambda c: after_close(c, unary("Close", pb.CloseRequest)), OK),
]


# -- the server, the control stream ------------------------------------------------------------------


@dataclass
class Table:
    server: ParleyServer
    channel: grpc.aio.Channel
    stub: pb_grpc.AgentSessionServiceStub
    control: str
    control_stream: StreamClient
    errors: ErrorLog


def make_audio_dir(root: Path) -> Path:
    folder = root / "audio"
    folder.mkdir()
    t = np.arange(8000) / 8000
    sf.write(folder / "tone.wav", (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 8000, subtype="PCM_16")
    sf.write(folder / "big.wav", np.zeros(20_000, np.int16), 16000, subtype="PCM_16")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    (folder / "notes.txt").write_text("not audio at all\n")
    return folder


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def table(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Table]:
    folder = make_audio_dir(tmp_path_factory.mktemp("bad-input"))
    settings = ServerSettings(host="127.0.0.1", port=0, log_level="WARNING", shutdown_grace=1.0,
                              allow_stand_in_providers=True, audio_dir=str(folder), **LIMITS)
    with ErrorLog() as errors:
        server = ParleyServer(settings)
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.AgentSessionServiceStub(channel)
            control = (await stub.Start(pb.StartRequest(
                config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)))).session.name
            control_stream = await open_stream(stub, control)
            await stub.Say(pb.SayRequest(session=control, text="la " * 1000))  # three minutes of speech
            yield Table(server, channel, stub, control, control_stream, errors)
            await control_stream.aclose()
        await server.stop()


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
async def test_bad_input(table: Table, row: Row) -> None:
    stub = table.stub
    session = (await stub.Start(pb.StartRequest(
        config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)))).session.name
    frames_before = len(table.control_stream.frames)
    try:
        outcome = await row.call(Ctx(stub, table.server, session))
    finally:
        for other in (await stub.List(pb.ListRequest(page_size=20))).sessions:  # leave only the control session
            if other.name != table.control and other.status == session_pb2.SESSION_STATUS_ACTIVE:
                await stub.Close(pb.CloseRequest(session=other.name))

    assert outcome.code is row.code, outcome
    if row.field:
        assert outcome.fields == (row.field,), outcome
    if row.reason:
        assert outcome.reason == row.reason, outcome
    if row.limit:
        assert outcome.limit == row.limit and row.limit in outcome.message, outcome
    if row.message:
        assert row.message in outcome.message, outcome
    if row.code is not OK and not row.message:
        assert outcome.reason, "every error of ours carries an ErrorInfo reason"

    # the server still serves, and nobody else noticed
    health = await health_pb2_grpc.HealthStub(table.channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    control = (await stub.Get(pb.GetRequest(session=table.control))).session
    assert control.status == session_pb2.SESSION_STATUS_ACTIVE and control.audio_stream_attached
    await wait_frames(table.control_stream, frames_before)
    assert contiguous(table.control_stream), "the control stream skipped frames"
    assert not table.errors.records, table.errors.summary()
