"""The ASGI app of `parley web`: the page, its status, and the WebSocket bridge, on one port."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from parley.providers.registry import DEFAULTS, REGISTRY
from parley.web.bridge import Tab
from parley.web.client import ParleyClient
from parley.web.settings import WebSettings

log = logging.getLogger("parley.web")

STATIC = Path(str(files("parley.web").joinpath("static")))
PAGE_STAGES = ("stt", "llm", "tts")  # the providers the page lets one choose


def create_app(settings: WebSettings, routes: Sequence[BaseRoute] = (),
               on_close: Sequence[Callable[[], Awaitable[None]]] = ()) -> Starlette:
    """The page at /, its files under /static, GET /api/status, the bridge at /ws, then `routes`.

    `app.state.parley` is the ParleyClient (channel, stub, token) that extra routes share; `on_close`
    is awaited when the app shuts down (the extra routes' own clean-up).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.parley = ParleyClient(settings)
        try:
            yield
        finally:
            for close in on_close:
                await close()
            await app.state.parley.close()

    return Starlette(
        routes=[
            Route("/", _page),
            Route("/api/status", _status),
            WebSocketRoute("/ws", _bridge),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            *routes,
        ],
        lifespan=lifespan,
    )


async def _page(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def _status(request: Request) -> JSONResponse:
    """Whether the gRPC server answers, and what the page may offer."""
    client: ParleyClient = request.app.state.parley
    status, detail = await client.health()
    return JSONResponse({
        "version": version("parley"),
        "server": {"address": client.settings.address, "status": status, "detail": detail},
        "providers": {stage: [{"name": name, "default": name == DEFAULTS[stage], "stand_in": entry.stand_in,
                               "extra": entry.extra} for name, entry in sorted(REGISTRY[stage].items())]
                      for stage in PAGE_STAGES},
    })


async def _bridge(websocket: WebSocket) -> None:
    client: ParleyClient = websocket.app.state.parley
    origin = websocket.headers.get("origin")
    if origin is not None and not _same_origin(origin, websocket.headers.get("host", "")) \
            and origin not in client.settings.allowed_origins:
        # Another site's page in the same browser must not talk with this bridge's token.
        log.warning("websocket from a foreign origin refused", extra={"origin": origin})
        await websocket.close(code=1008, reason="origin not allowed")
        return
    await websocket.accept()
    await Tab(websocket, client).run()


def _same_origin(origin: str, host: str) -> bool:
    return urlsplit(origin).netloc.lower() == host.lower()
