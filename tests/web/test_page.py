"""The page in Debian's headless chromium, driven over the DevTools protocol, with a spoken question as the
microphone (chromium's fake capture device playing examples/audio/question.wav once)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from parley.v1 import agent_session_service_pb2 as pb
from parley.web.settings import WebSettings
from tests.examples.conftest import QUESTION
from tests.helpers import free_port
from tests.web.cdp import Page, launch
from tests.web.conftest import ARTIFACTS, AUTH, wait_closed, web_server

FAKE_MICROPHONE = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                   f"--use-file-for-fake-audio-capture={QUESTION}%noloop")
# The echo LLM stands in for a model here: a reply long enough to be cut while it plays, the same every run.
STORY = ("You said: {user} Let me tell you a long story about the sea, the wind, and a small boat that sailed "
         "from one harbour to the next for many, many years, and never once lost its way.")
QUESTION_WORDS = ("what", "weather", "today")


def page_url(base: str, **params: str) -> str:
    return f"{base}/?{urlencode(params)}" if params else f"{base}/"


async def state(page: Page) -> str:
    return await page.evaluate("document.body.dataset.state")


async def banner(page: Page) -> tuple[str, str]:
    return tuple(await page.evaluate("[document.getElementById('banner').dataset.kind || '', "
                                     "document.getElementById('banner').hidden ? '' : "
                                     "document.getElementById('banner').textContent]"))


async def test_talk_to_the_agent_in_the_browser(web: str, stub, tmp_path: Path) -> None:
    started = time.monotonic()
    config = json.dumps({"providers": {"llm": {"options": {"template": STORY}}, "tts": {"name": "espeak"}}})
    async with launch(tmp_path / "profile", FAKE_MICROPHONE) as browser:
        page = await browser.open(page_url(web, llm="echo", config=config))
        await page.wait_for("document.body.dataset.state === 'ready'", 20, "the page to be ready")
        status = await page.evaluate("document.getElementById('server-status').textContent")
        assert status.endswith("serving"), status
        assert await page.evaluate("document.getElementById('llm').value") == "echo"

        await page.click("#start")
        name = await page.wait_for("document.body.dataset.state === 'live' && "
                                   "document.getElementById('session-name').textContent", 30, "the session")

        # the spoken question, transcribed by the server's STT, shown as your turn
        heard = await page.wait_for("document.querySelector('#transcript li.you')?.textContent", 60,
                                    "the final transcript of the question")
        assert any(word in heard.lower() for word in QUESTION_WORDS), heard

        # the agent's reply plays: its utterance is speaking and the AnalyserNode on the output reads sound
        await page.wait_for("document.querySelector('#transcript li.agent')?.dataset.state === 'speaking'", 60,
                            "the reply to be speaking")
        peak = await page.wait_for("(p => p > 0.05 && p)(parley.agentPeak())", 10, "the reply to be audible")
        assert peak > 0.05
        latency = int(await page.wait_for("document.getElementById('latency').dataset.ms", 10, "the latency readout"))
        assert 0 < latency < 60_000
        assert await page.evaluate("document.getElementById('mic-level').value") is not None
        assert "agent_state_changed" in await page.evaluate("document.getElementById('events').textContent")
        await page.screenshot(ARTIFACTS / "web-page-speaking.png")

        # Interrupt cuts it (once some words were heard): the utterance ends interrupted and the output goes quiet
        await played_for(stub, name, 2000)
        await page.click("#interrupt")
        await page.wait_for("document.querySelector('#transcript li.agent').dataset.state === 'interrupted'", 10,
                            "the reply to be interrupted")
        await page.wait_for("parley.agentPeak() < 0.001", 5, "the output to go quiet")
        await page.screenshot(ARTIFACTS / "web-page-interrupted.png")
        reply = (await stub.Get(pb.GetRequest(session=name), metadata=AUTH)).session.utterances[-1]
        assert reply.heard_text and reply.text.startswith(reply.heard_text) and reply.heard_text != reply.text

        # Say speaks a text; background audio plays and stops with its button
        await page.evaluate("document.getElementById('say-text').value = 'Sure, just a moment.'")
        await page.click("#say")
        await page.wait_for("[...document.querySelectorAll('#transcript li.agent')].some(li => "
                            "li.firstChild.textContent === 'Sure, just a moment.' && li.dataset.state === 'played')",
                            20, "the Say to be played")
        await page.click("#background")
        await page.wait_for("document.getElementById('background').getAttribute('aria-pressed') === 'true'", 10,
                            "the background button to be on")
        await page.wait_for("parley.agentPeak() > 0.005", 10, "the background audio to be audible")
        await page.click("#background")
        await page.wait_for("document.getElementById('background').getAttribute('aria-pressed') === 'false'", 10,
                            "the background button to be off")

        # the tab goes: its session closes
        await page.close()
        assert (await wait_closed(stub, name)).close_reason == "browser tab closed"
    print(f"browser conversation test: {time.monotonic() - started:.1f} s")


async def test_microphone_denied_and_session_closed_states(web: str, stub, tmp_path: Path) -> None:
    # No fake permission prompt here: the page's origin is denied, then granted, the microphone.
    async with launch(tmp_path / "profile", FAKE_MICROPHONE[1:]) as browser:
        page = await browser.open(page_url(web, llm="echo", stt="scripted", tts="tone"))
        await page.wait_for("document.body.dataset.state === 'ready'", 20, "the page to be ready")
        await browser.send("Browser.setPermission", {"permission": {"name": "microphone"}, "setting": "denied",
                                                     "origin": web})
        await page.click("#start")
        await page.wait_for("document.body.dataset.state === 'mic-denied'", 10, "the microphone-denied state")
        kind, text = await banner(page)
        assert kind == "mic-denied" and text.startswith("Microphone denied"), text
        await page.screenshot(ARTIFACTS / "web-page-microphone-denied.png")

        await browser.send("Browser.setPermission", {"permission": {"name": "microphone"}, "setting": "granted",
                                                     "origin": web})
        await page.click("#start")
        name = await page.wait_for("document.body.dataset.state === 'live' && "
                                   "document.getElementById('session-name').textContent", 30, "the session")
        await stub.Close(pb.CloseRequest(session=name, reason="closed by the operator"), metadata=AUTH)
        await page.wait_for("document.body.dataset.state === 'closed'", 10, "the session-closed state")
        kind, text = await banner(page)
        assert kind == "closed" and "closed by the operator" in text, text
        assert not await page.evaluate("document.getElementById('start').disabled")  # a new session is a click away


async def played_for(stub, name: str, ms: int) -> None:
    """Until the session's latest utterance has played `ms` of audio (Get reports it live)."""
    async with asyncio.timeout(30):
        while (await stub.Get(pb.GetRequest(session=name), metadata=AUTH)).session.utterances[-1].played_ms < ms:
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("when", ["on load", "on start"])
async def test_server_not_reachable_state(server, tmp_path: Path, when: str) -> None:
    down = f"127.0.0.1:{free_port()}"
    async with web_server(WebSettings(address=down)) as url, launch(tmp_path / "profile", FAKE_MICROPHONE) as browser:
        page = await browser.open(page_url(url))
        await page.wait_for("document.getElementById('banner').dataset.kind === 'unreachable'", 20,
                            "the server-not-reachable banner")
        if when == "on start":
            await page.evaluate("document.getElementById('banner').dataset.kind = ''")
            await page.click("#start")
            await page.wait_for("document.getElementById('banner').dataset.kind === 'unreachable'", 20,
                                "the server-not-reachable banner after Start")
        kind, text = await banner(page)
        assert text.startswith("Server not reachable") and down in text, text
        assert await state(page) == "ready"  # Start again once the server is up
        if when == "on load":
            await page.screenshot(ARTIFACTS / "web-page-server-not-reachable.png")
