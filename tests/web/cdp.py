"""A small Chrome DevTools Protocol client: Debian's headless chromium, driven over its WebSocket.

Only what the page tests need: start the browser on a fresh profile with fake media, open a page,
evaluate JavaScript, click, take a screenshot, close a tab.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import websockets

CHROMIUM = "chromium"
# Flags for a closed network and a root user; each new profile starts with nothing of the last.
QUIET_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--mute-audio", "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1100",
)


class CdpError(RuntimeError):
    pass


class Page:
    """One tab: commands on its own session of the browser connection."""

    def __init__(self, browser: Browser, target_id: str, session_id: str) -> None:
        self.browser = browser
        self.target_id = target_id
        self.session_id = session_id

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, session_id=self.session_id)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited); a thrown error raises CdpError."""
        reply = await self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                     "returnByValue": True})
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise CdpError(details.get("exception", {}).get("description") or details.get("text"))
        return reply["result"].get("value")

    async def wait_for(self, expression: str, timeout: float, what: str = "") -> Any:
        """Poll a JavaScript expression until it is truthy; its value, or AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout} s for {what or expression}")
            await asyncio.sleep(0.05)

    async def click(self, selector: str) -> None:
        """A click on the element, as the page sees one (it must exist and be enabled)."""
        await self.evaluate(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) throw new Error('no element ' + {json.dumps(selector)});
            if (el.disabled) throw new Error({json.dumps(selector)} + ' is disabled');
            el.click(); return true; }})()""")

    async def screenshot(self, path: Path) -> Path:
        data = (await self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}))["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    async def close(self) -> None:
        await self.browser.send("Target.closeTarget", {"targetId": self.target_id})


class Browser:
    """A headless chromium process and its DevTools WebSocket."""

    def __init__(self, process: asyncio.subprocess.Process, socket: Any) -> None:
        self.process = process
        self.socket = socket
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._reader = asyncio.create_task(self._read())
        self.console: list[str] = []

    async def _read(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            future = self._pending.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(CdpError(message["error"].get("message", str(message["error"]))))
                else:
                    future.set_result(message.get("result", {}))
            elif "method" in message:
                self._on_event(message)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the browser connection closed"))

    def _on_event(self, message: dict[str, Any]) -> None:
        if message["method"] == "Runtime.consoleAPICalled":
            args = message["params"].get("args", [])
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
        elif message["method"] == "Runtime.exceptionThrown":
            self.console.append("exception: " + json.dumps(message["params"]["exceptionDetails"])[:500])

    async def send(self, method: str, params: dict[str, Any] | None = None, *, session_id: str = "") -> dict[str, Any]:
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        await self.socket.send(json.dumps(message))
        return await asyncio.wait_for(future, 30)

    async def open(self, url: str) -> Page:
        """A new tab at `url`, loaded, with its console collected."""
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        page = Page(self, target, session)
        await page.send("Runtime.enable")
        await page.send("Page.enable")
        await page.send("Page.navigate", {"url": url})
        await page.wait_for("document.readyState === 'complete'", 30, "the page to load")
        return page


def chromium_path() -> str:
    path = shutil.which(CHROMIUM)
    if path is None:
        raise RuntimeError("chromium is not installed: `apt-get install -y chromium` (.ci/run does it)")
    return path


@contextlib.asynccontextmanager
async def launch(profile: Path, extra_flags: tuple[str, ...] = ()) -> AsyncIterator[Browser]:
    """Headless chromium on a fresh profile; the DevTools port is chosen by the browser and read from its stderr."""
    process = await asyncio.create_subprocess_exec(
        chromium_path(), *QUIET_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1", *extra_flags, "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    browser = None
    try:
        url = await _devtools_url(process)
        socket = await websockets.connect(url, max_size=64 * 1024 * 1024, ping_interval=None)
        browser = Browser(process, socket)
        yield browser
    finally:
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.send("Browser.close"), 5)
            await browser.socket.close()
            browser._reader.cancel()
        if process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _devtools_url(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    seen: list[str] = []
    while True:
        line = await asyncio.wait_for(process.stderr.readline(), 60)
        if not line:
            raise RuntimeError("chromium exited before DevTools listened:\n" + "".join(seen))
        text = line.decode(errors="replace")
        seen.append(text)
        match = re.search(r"DevTools listening on (ws://\S+)", text)
        if match:
            asyncio.get_running_loop().create_task(_drain(process.stderr))
            return match.group(1)


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading the browser's stderr so it never blocks on a full pipe."""
    while await stream.readline():
        pass
