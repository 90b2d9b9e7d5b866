"""`parley phone`: the bridge on its own port, until SIGINT / SIGTERM.

Its options are parsed without importing the bridge, so the other `parley`
commands start no slower for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf import json_format

from parley.v1 import session_pb2

if TYPE_CHECKING:
    from parley.phone.bridge import PhoneSettings

log = logging.getLogger("parley.phone")

MAX_MESSAGE_BYTES = 64 * 1024  # a media message carries 20 ms of G.711 (about 300 bytes of JSON); larger: 1009


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--address", default=env("PARLEY_ADDRESS", "127.0.0.1:50051"),
                        help="the Parley server, host:port (env PARLEY_ADDRESS)")
    parser.add_argument("--token", default=env("PARLEY_TOKEN", ""),
                        help="bearer token when Parley has authentication on (env PARLEY_TOKEN)")
    parser.add_argument("--host", default=env("PARLEY_PHONE_HOST", "127.0.0.1"),
                        help="address to serve the WebSocket on (env PARLEY_PHONE_HOST)")
    parser.add_argument("--port", type=int, default=int(env("PARLEY_PHONE_PORT", "8081")),
                        help="port (0 picks a free one; the `serving` log line names it) (env PARLEY_PHONE_PORT)")
    parser.add_argument("--path", default="/phone", help="the media stream's WebSocket path")
    parser.add_argument("--session-config", default=env("PARLEY_PHONE_SESSION_CONFIG", ""),
                        help="SessionConfig of the sessions calls start, as proto JSON or @file "
                             "(e.g. '{\"instructions\": \"...\", \"providers\": {\"llm\": {\"name\": \"openai\"}}}') "
                             "(env PARLEY_PHONE_SESSION_CONFIG)")
    parser.add_argument("--lead-ms", type=int, default=int(env("PARLEY_PHONE_LEAD_MS", "100")),
                        help="agent audio sent this far ahead of real time, 0..500 (env PARLEY_PHONE_LEAD_MS)")
    parser.add_argument("--secret", default=env("PARLEY_PHONE_SECRET", ""),
                        help="when set, a call's start.customParameters.secret must equal it "
                             "(env PARLEY_PHONE_SECRET)")
    parser.add_argument("--page", action="store_true",
                        help="also serve `parley web`'s page (microphone, speaker, events) on the same port")
    parser.add_argument("--log-level", default=env("PARLEY_LOG_LEVEL", "INFO"))


def settings_from(args: argparse.Namespace) -> PhoneSettings:
    """Raises ValueError for a session config that does not parse."""
    from parley.phone.bridge import PhoneSettings

    config = session_pb2.SessionConfig()
    text = args.session_config
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    if text.strip():
        try:
            json_format.Parse(text, config)
        except json_format.ParseError as exc:
            raise ValueError(f"--session-config: {exc}") from None
    if not 0 <= args.lead_ms <= 500:
        raise ValueError(f"--lead-ms must be 0..500, got {args.lead_ms}")
    return PhoneSettings(address=args.address, token=args.token, session_config=config, lead_ms=args.lead_ms,
                         secret=args.secret)


async def serve(settings: PhoneSettings, host: str, port: int, path: str, page: bool = False) -> None:
    """Serve until SIGINT / SIGTERM (uvicorn handles both: open calls get their close); `page`: the web page too."""
    import uvicorn

    from parley.phone.app import phone_app
    from parley.web.settings import WebSettings

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """SIGINT / SIGTERM stop the server gracefully and the process exits 0, as `parley serve` does
            (uvicorn's own handling re-raises the signal once stopped)."""
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            try:
                yield
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    web = WebSettings(address=settings.address, token=settings.token, host=host, port=port) if page else None
    app = phone_app(settings, path, web)
    server = Server(uvicorn.Config(app, ws="websockets-sansio", log_config=None, lifespan="on", access_log=False,
                                   ws_max_size=web.max_message_bytes if web else MAX_MESSAGE_BYTES))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))  # bound and listening here, so the log can name the port even when 0 picked it,
    sock.listen(2048)  # and a client that read it can connect at once (it is accepted once uvicorn runs)
    bound = sock.getsockname()
    log.info("serving", extra={"address": f"{bound[0]}:{bound[1]}", "path": path, "parley": settings.address,
                               "page": page})
    await server.serve(sockets=[sock])
