"""What `parley web` is configured with: where the gRPC server is, the token, where to serve."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WebSettings:
    address: str = "127.0.0.1:50051"
    """host:port of the Parley gRPC server the bridge is a client of."""
    token: str = ""
    """Bearer token sent on every call, when the server has authentication on."""
    host: str = "127.0.0.1"
    """Where the page and the WebSocket are served. Whoever reaches them acts with the token."""
    port: int = 8080
    allowed_origins: tuple[str, ...] = ()
    """Origins besides the page's own that may open the WebSocket (e.g. https://app.example)."""
    max_message_bytes: int = 256 * 1024
    """Largest WebSocket message from a page; a larger one closes the connection (1009)."""
    start_timeout: float = 30.0
    """Seconds a Start may take (providers build, MCP servers connect)."""
    call_timeout: float = 10.0
    """Seconds any other call may take."""

