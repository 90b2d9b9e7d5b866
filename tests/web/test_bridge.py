"""The WebSocket bridge, with a plain WebSocket client as the page: one tab is one session, closed when the tab
goes; every bad message gets an error frame and the connection carries on."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import websockets

from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from parley.web.settings import WebSettings
from tests.engine.conftest import STAND_IN_PROVIDERS, open_stream
from tests.helpers import free_port
from tests.web.conftest import AUTH, TOKEN, PageSocket, page_socket, wait_closed, web_server

# Stand-ins, to isolate the bridge: no model to load, speech that is a tone.
STAND_INS = {"providers": {"stt": {"name": "scripted"}, "vad": {"name": "energy"}, "llm": {"name": "echo"},
                           "tts": {"name": "tone"}}}


async def test_a_tab_is_a_session_closed_when_the_tab_goes(web: str, stub) -> None:
    async with page_socket(web) as page:
        await page.send({"type": "start", "config": STAND_INS, "input_rate": 16000, "output_rate": 24000})
        session = (await page.next_frame("session"))["session"]
        assert session["name"].startswith("sessions/")
        await page.send({"type": "say", "text": "Hello from the page."})
        said = (await page.next_frame("result", request="say"))["result"]["utterance"]
        played = await page.next_frame("event", kind="utterance_updated", text=f"{said['id']} say played "
                                       "'Hello from the page.'")
        assert played["event"]["utterance_updated"]["utterance"]["state"] == "UTTERANCE_STATE_PLAYED"
        assert page.audio_bytes >= 2 * 24000 // 10  # frames flow: at least 100 ms of 24 kHz audio so far
        for _ in range(10):  # the caller's audio is accepted: no error frame for it
            await page.send(np.zeros(320, dtype="<i2").tobytes())
        running = (await stub.Get(pb.GetRequest(session=session["name"]), metadata=AUTH)).session
        assert running.status == session_pb2.SESSION_STATUS_ACTIVE
    closed = await wait_closed(stub, session["name"])
    assert closed.close_reason == "browser tab closed"
    assert not [f for f in page.frames if f["type"] == "error"], page.frames


async def test_hang_up_from_the_page_ends_the_connection(web: str, stub) -> None:
    async with page_socket(web) as page:
        await page.send({"type": "start", "config": STAND_INS})
        name = (await page.next_frame("session"))["session"]["name"]
        await page.send({"type": "close"})
        assert (await page.next_frame("event", kind="session_closed"))["text"] == "'closed from the page'"
        assert (await page.next_frame("closed"))["reason"] == "closed from the page"
        assert await page.closed() == 1000
    assert (await wait_closed(stub, name)).close_reason == "closed from the page"


async def test_a_session_closed_by_the_operator_while_the_page_talks_ends_with_the_operators_reason(
        web: str, stub) -> None:
    """The microphone keeps sending as the session closes: the page still learns why, not a stream failure."""
    for attempt in range(40):
        async with page_socket(web) as page:
            await page.send({"type": "start", "config": STAND_INS, "input_rate": 16000})
            name = (await page.next_frame("session"))["session"]["name"]
            talked = asyncio.Event()
            talking = asyncio.create_task(microphone(page, 10 * (attempt % 4), talked))
            try:
                await talked.wait()  # the close lands a different number of chunks into the talk each time
                await stub.Close(pb.CloseRequest(session=name, reason="closed by the operator"), metadata=AUTH)
                closed = await page.next_frame("closed")
            finally:
                talking.cancel()
                await asyncio.gather(talking, return_exceptions=True)
            assert closed["reason"] == "closed by the operator", (attempt, closed, page.frames)
            assert not [f for f in page.frames if f["type"] == "error"], (attempt, page.frames)


async def microphone(page: PageSocket, chunks: int, talked: asyncio.Event) -> None:
    """20 ms chunks, ten times faster than real time, until cancelled; `talked` is set after `chunks` of them."""
    sent = 0
    while True:
        if sent == chunks:
            talked.set()
        await page.send(np.zeros(320, dtype="<i2").tobytes())
        sent += 1
        await asyncio.sleep(0.002)  # the page's pace, not a wait for anything


async def test_bad_messages_get_error_frames_and_the_tab_carries_on(web: str, stub) -> None:
    async with page_socket(web) as page:
        before_start = [
            ("not json", "", "INVALID_ARGUMENT", ""),
            ("[1, 2]", "", "INVALID_ARGUMENT", ""),
            ('{"type": "dance"}', "type", "INVALID_ARGUMENT", ""),
            ('{"type": "say", "text": "too early"}', "type", "FAILED_PRECONDITION", "say"),
            (b"\x00\x01", "audio", "FAILED_PRECONDITION", "audio"),
            ('{"type": "start", "config": {"instructions": 5, "nope": 1}}', "config", "INVALID_ARGUMENT", "start"),
            ('{"type": "start", "config": []}', "config", "INVALID_ARGUMENT", "start"),
            ('{"type": "start", "input_rate": 1000}', "input_rate", "INVALID_ARGUMENT", "start"),
            ('{"type": "start", "input_rate": "16000"}', "input_rate", "INVALID_ARGUMENT", "start"),
            ('{"type": "start", "output_rate": 44100}', "output_rate", "INVALID_ARGUMENT", "start"),
            ('{"type": "background", "play": "yes"}', "play", "INVALID_ARGUMENT", "background"),
            ("[" * 100_000 + "]" * 100_000, "", "INVALID_ARGUMENT", ""),  # nested past the JSON parser's depth
        ]
        for message, field, code, request in before_start:
            await page.send(message)
            error = await page.next_frame("error")
            assert (error["field"], error["code"], error["request"]) == (field, code, request), (message, error)
            assert error["message"]

        # the server's own refusals come back the same way, with the field it names
        await page.send({"type": "start", "config": {"providers": {"llm": {"name": "nope"}}}})
        error = await page.next_frame("error", request="start")
        assert (error["code"], error["field"]) == ("INVALID_ARGUMENT", "config.providers.llm.name"), error

        await page.send({"type": "start", "config": STAND_INS})
        name = (await page.next_frame("session"))["session"]["name"]
        after_start = [
            ('{"type": "start", "config": {}}', "type", "FAILED_PRECONDITION", "start"),  # one tab, one session
            ('{"type": "say", "text": "  "}', "text", "INVALID_ARGUMENT", "say"),
            (b"\x00\x01\x02", "audio", "INVALID_ARGUMENT", "audio"),  # not whole 16-bit samples
            (bytes(2 * 16000 + 2), "audio", "INVALID_ARGUMENT", "audio"),  # over a second at 16 kHz
            ('{"type": "say", "text": "' + "x" * 5000 + '"}', "text", "INVALID_ARGUMENT", "say"),  # the server's limit
        ]
        for message, field, code, request in after_start:
            await page.send(message)
            error = await page.next_frame("error")
            assert (error["field"], error["code"], error["request"]) == (field, code, request), (message, error)

        await page.send({"type": "say", "text": "Still here."})  # the tab works after all of that
        said = (await page.next_frame("result", request="say"))["result"]["utterance"]
        assert said["text"] == "Still here."
        await page.send({"type": "background", "play": True})
        assert (await page.next_frame("result", request="background"))["result"]["background_audio"]["playing"]
        await page.send({"type": "thinking", "play": True})
        await page.next_frame("result", request="thinking")
        await page.send({"type": "interrupt"})
        await page.next_frame("result", request="interrupt")
    assert (await wait_closed(stub, name)).close_reason == "browser tab closed"


async def test_a_message_over_the_size_limit_closes_the_connection_with_1009(server) -> None:
    settings = WebSettings(address=f"127.0.0.1:{server.port}", max_message_bytes=64 * 1024)
    async with web_server(settings) as url, page_socket(url) as page:
        await page.send('{"type": "say", "text": "' + "x" * 70_000 + '"}')
        assert await page.closed() == 1009


async def test_a_page_of_another_origin_is_refused(web: str) -> None:
    try:
        async with page_socket(web, origin="http://evil.example"):
            raise AssertionError("the handshake should have been refused")
    except (websockets.InvalidStatus, websockets.ConnectionClosed) as exc:
        assert "403" in str(exc) or "1008" in str(exc), exc
    async with page_socket(web, origin=web) as page:  # the page's own origin may
        await page.send({"type": "dance"})
        assert (await page.next_frame("error"))["field"] == "type"


async def test_server_not_reachable_and_bad_token_are_error_frames(server) -> None:
    unreachable = WebSettings(address=f"127.0.0.1:{free_port()}")
    async with web_server(unreachable) as url, page_socket(url) as page:
        await page.send({"type": "start", "config": STAND_INS})
        assert (await page.next_frame("error", request="start"))["code"] == "UNAVAILABLE"
    no_token = WebSettings(address=f"127.0.0.1:{server.port}")
    async with web_server(no_token) as url, page_socket(url) as page:
        await page.send({"type": "start", "config": STAND_INS})
        assert (await page.next_frame("error", request="start"))["code"] == "UNAUTHENTICATED"


async def test_status_says_whether_the_server_answers(web: str, server) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        status = (await http.get(web + "/api/status")).json()
        assert status["server"] == {"address": f"127.0.0.1:{server.port}", "status": "SERVING", "detail": ""}
        assert {"whisper", "pocketsphinx"} <= {p["name"] for p in status["providers"]["stt"]}
        page = await http.get(web + "/")
        assert page.status_code == 200 and 'src="/static/app.js"' in page.text
        for name in ("app.js", "capture-worklet.js", "playback-worklet.js", "resampler.js", "style.css"):
            assert (await http.get(f"{web}/static/{name}")).status_code == 200, name
    await asyncio.sleep(0)


@pytest.mark.parametrize("server_settings", [ServerSettings(
    host="127.0.0.1", port=0, shutdown_grace=1.0, log_level="WARNING", allow_stand_in_providers=True,
    auth_tokens=f"{TOKEN} web-tester", max_streams=1)])
async def test_a_tab_past_max_streams_learns_why_while_its_microphone_runs(web: str, stub) -> None:
    """The server carries its one stream already: each new tab's stream is refused, and the page gets
    RESOURCE_EXHAUSTED naming max_streams while its microphone is already sending; its session is closed."""
    busy = (await stub.Start(pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)),
                             metadata=AUTH)).session.name
    admitted = await open_stream(stub, busy, metadata=AUTH)
    for attempt in range(10):
        async with page_socket(web) as page:
            await page.send({"type": "start", "config": STAND_INS, "input_rate": 16000})
            talking = asyncio.create_task(microphone(page, 0, asyncio.Event()))  # the page does not wait
            try:
                name = (await page.next_frame("session"))["session"]["name"]
                error = await page.next_frame("error", request="stream")
                closed = await page.next_frame("closed")
            finally:
                talking.cancel()
                await asyncio.gather(talking, return_exceptions=True)
            assert error["code"] == "RESOURCE_EXHAUSTED" and "max_streams" in error["message"], (attempt, error)
            assert closed["reason"] == "the audio stream failed: RESOURCE_EXHAUSTED", (attempt, closed)
        assert (await wait_closed(stub, name)).status == session_pb2.SESSION_STATUS_CLOSED
    assert admitted.frames and admitted.error is None  # the admitted call went on
    await admitted.aclose()
