"""Session lifecycle over a real server: Start, Get, List, Close, errors, limits, TTL."""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import audio_pb2, session_pb2
from tests.helpers import error_details, eventually


async def start(stub, **config) -> session_pb2.Session:
    reply = await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(**config)))
    return reply.session


async def test_start_get_list_close_round_trip(stub) -> None:
    session = await start(stub, instructions="You are terse.", labels={"team": "support"})
    assert session.name.startswith("sessions/")
    assert session.status == session_pb2.SESSION_STATUS_ACTIVE
    assert session.agent_state == session_pb2.AGENT_STATE_IDLE
    # defaults are filled in, so a client sees what it runs with
    assert session.config.output_format.sample_rate_hz == 24000
    assert session.config.interruption.mode == session_pb2.INTERRUPTION_MODE_HYBRID

    got = (await stub.Get(pb.GetRequest(session=session.name))).session
    assert got.name == session.name and got.config.labels["team"] == "support"
    providers = got.config.providers
    assert [getattr(providers, stage).name for stage in ("stt", "tts", "llm", "vad", "turn_detector")] == \
        ["whisper", "espeak", "local", "webrtc", "vad"]
    assert providers.tts.options["rate"] == 160 and providers.llm.options["max_tokens"] == 96
    background, thinking = got.config.background_audio.layer, got.config.thinking_audio.layer
    assert (background.source, thinking.source) == ("builtin:ambience", "builtin:thinking")
    assert (round(background.gain, 3), round(thinking.gain, 3)) == (0.3, 0.5)
    assert [m.content for m in got.chat_history] == ["You are terse."]

    listed = (await stub.List(pb.ListRequest())).sessions
    assert [s.name for s in listed] == [session.name]

    closed = (await stub.Close(pb.CloseRequest(session=session.name, reason="done"))).session
    assert closed.status == session_pb2.SESSION_STATUS_CLOSED
    assert closed.close_reason == "done"
    assert (await stub.Get(pb.GetRequest(session=session.name))).session.status == session_pb2.SESSION_STATUS_CLOSED


async def test_get_shows_the_model_in_use_and_never_the_api_key(stub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_MODEL", "served-model")
    llm = session_pb2.ProviderSpec(name="openai", options={"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-secret"})
    session = await start(stub, providers=session_pb2.ProvidersConfig(llm=llm))
    shown = (await stub.Get(pb.GetRequest(session=session.name))).session.config.providers.llm
    assert shown.options["model"] == "served-model" and shown.options["api_key"] == "<redacted>"
    assert "sk-secret" not in str(session) and "temperature" not in shown.options  # unset stays unset


async def test_close_is_idempotent(stub) -> None:
    session = await start(stub)
    first = (await stub.Close(pb.CloseRequest(session=session.name, reason="first"))).session
    second = (await stub.Close(pb.CloseRequest(session=session.name, reason="second"))).session
    assert second.status == session_pb2.SESSION_STATUS_CLOSED
    assert second.close_reason == first.close_reason == "first"
    assert second.close_time == first.close_time


async def test_start_replayed_with_same_request_id_returns_same_session(stub) -> None:
    request = pb.StartRequest(config=session_pb2.SessionConfig(), request_id="retry-1")
    first, second = await asyncio.gather(stub.Start(request), stub.Start(request))
    third = await stub.Start(request)
    assert first.session.name == second.session.name == third.session.name
    other = await stub.Start(pb.StartRequest(request_id="retry-2"))
    assert other.session.name != first.session.name
    assert len((await stub.List(pb.ListRequest())).sessions) == 2


async def test_unknown_session_is_not_found(stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Get(pb.GetRequest(session="sessions/doesnotexist"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(err.value)[1] == "SESSION_NOT_FOUND"


@pytest.mark.parametrize("name", ["", "session/abc", "sessions/", "sessions/a b", "sessions/" + "x" * 65])
async def test_malformed_session_name_names_the_field(stub, name: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Get(pb.GetRequest(session=name))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations, _ = error_details(err.value)
    assert [field for field, _ in violations] == ["session"]


BAD_CONFIGS = [
    (dict(output_format=audio_pb2.AudioFormat(sample_rate_hz=12345)), "config.output_format.sample_rate_hz"),
    (dict(output_format=audio_pb2.AudioFormat(frame_ms=25)), "config.output_format.frame_ms"),
    (dict(output_format=audio_pb2.AudioFormat(encoding=7)), "config.output_format.encoding"),
    (dict(interruption=session_pb2.InterruptionConfig(min_duration_seconds=math.nan)),
     "config.interruption.min_duration_seconds"),
    (dict(interruption=session_pb2.InterruptionConfig(mode=42)), "config.interruption.mode"),
    (dict(interruption=session_pb2.InterruptionConfig(min_words=-1)), "config.interruption.min_words"),
    (dict(turn_detection=session_pb2.TurnDetectionConfig(
        min_endpointing_delay_seconds=2, max_endpointing_delay_seconds=1)),
     "config.turn_detection.max_endpointing_delay_seconds"),
    (dict(background_audio=session_pb2.BackgroundAudioConfig(layer=session_pb2.AudioLayerConfig(gain=-0.5))),
     "config.background_audio.layer.gain"),
    (dict(wake_up=session_pb2.WakeUpConfig(after_seconds=5)), "config.wake_up.action"),
    (dict(tools=[session_pb2.ToolDefinition(name="bad name")]), "config.tools[0].name"),
    (dict(tools=[session_pb2.ToolDefinition(name="t"), session_pb2.ToolDefinition(name="t")]), "config.tools[1].name"),
    (dict(idle_ttl_seconds=-1), "config.idle_ttl_seconds"),
    (dict(mcp_servers=[session_pb2.McpServerConfig(name="m", url="ftp://x")]), "config.mcp_servers[0].url"),
]


@pytest.mark.parametrize("config,field", BAD_CONFIGS, ids=[f for _, f in BAD_CONFIGS])
async def test_bad_config_field_is_named(stub, config, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await start(stub, **config)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations, reason = error_details(err.value)
    assert violations and violations[0][0] == field, violations
    assert violations[0][1]  # says why
    assert (await stub.List(pb.ListRequest())).sessions == []  # nothing half-created


async def test_list_pages_newest_first(stub) -> None:
    names = [(await start(stub)).name for _ in range(5)]
    page1 = await stub.List(pb.ListRequest(page_size=2))
    page2 = await stub.List(pb.ListRequest(page_size=2, page_token=page1.next_page_token))
    page3 = await stub.List(pb.ListRequest(page_size=2, page_token=page2.next_page_token))
    got = [s.name for p in (page1, page2, page3) for s in p.sessions]
    assert got == names[::-1]
    assert page3.next_page_token == ""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.List(pb.ListRequest(page_token="garbage"))
    assert error_details(err.value)[0][0][0] == "page_token"


class TestLimits:
    @pytest.fixture
    def server_settings(self, server_settings):
        return server_settings.replace(max_sessions=2)

    async def test_session_cap_is_resource_exhausted(self, stub) -> None:
        first = await start(stub)
        await start(stub)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await start(stub)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_sessions" in err.value.details() or "maximum" in err.value.details()
        await stub.Close(pb.CloseRequest(session=first.name))
        await start(stub)  # a slot is free again


async def test_idle_sessions_are_reaped_after_ttl(stub) -> None:
    short = await start(stub, idle_ttl_seconds=0.3)
    long = await start(stub, idle_ttl_seconds=60)
    async def closed() -> session_pb2.Session | None:
        got = (await stub.Get(pb.GetRequest(session=short.name))).session
        return got if got.status == session_pb2.SESSION_STATUS_CLOSED else None

    reaped = await eventually(closed, what="the idle session reaped")
    assert reaped.close_reason == "idle ttl expired"
    assert (await stub.Get(pb.GetRequest(session=long.name))).session.status == session_pb2.SESSION_STATUS_ACTIVE


async def test_watch_events_ends_with_session_closed(stub) -> None:
    session = await start(stub)
    call = stub.WatchEvents(pb.WatchEventsRequest(session=session.name))
    await asyncio.sleep(0.05)
    await stub.Close(pb.CloseRequest(session=session.name, reason="bye"))
    events = [r.event async for r in call]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["agent_state_changed", "session_closed"]
    assert events[0].agent_state_changed.new_state == session_pb2.AGENT_STATE_CLOSING
    assert events[-1].session_closed.reason == "bye"
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    assert await call.code() == grpc.StatusCode.OK


async def test_calls_on_closed_session_fail_precondition(stub) -> None:
    session = await start(stub)
    await stub.Close(pb.CloseRequest(session=session.name))
    call = stub.WatchEvents(pb.WatchEventsRequest(session=session.name))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(err.value)[1] == "SESSION_CLOSED"
