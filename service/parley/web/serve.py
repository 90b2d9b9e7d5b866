"""`parley web`: serve the app with uvicorn until SIGINT/SIGTERM."""

from __future__ import annotations

import signal

import uvicorn
from starlette.applications import Starlette

from parley.web.app import create_app
from parley.web.settings import WebSettings


def uvicorn_config(settings: WebSettings, app: Starlette | None = None, log_level: str = "info") -> uvicorn.Config:
    """The server for `app` (by default `create_app(settings)`): WebSocket message limit, lifespan on."""
    return uvicorn.Config(
        app or create_app(settings), host=settings.host, port=settings.port, log_level=log_level.lower(),
        ws="websockets-sansio", ws_max_size=settings.max_message_bytes, lifespan="on",
    )


def serve(settings: WebSettings, log_level: str = "info") -> None:
    """Until SIGINT or SIGTERM: uvicorn then closes every tab (and so its session) and returns."""
    # uvicorn raises the signal that stopped it again once it has shut down; by then nothing is left to do.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda *_: None)
    print(f"parley web: open http://{settings.host}:{settings.port}/ in a browser "
          f"(the gRPC server is {settings.address})", flush=True)
    uvicorn.Server(uvicorn_config(settings, log_level=log_level)).run()
