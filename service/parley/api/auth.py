"""Bearer-token authentication: who is calling.

Tokens map to principals. They come from a file (`--auth-tokens-file`) or
from text in `PARLEY_AUTH_TOKENS` / `--auth-tokens`, in one of two forms:

- lines of `token principal` (blank lines and `#` comments ignored; in the
  environment, entries may also be separated by commas), or
- a JSON object `{"token": "principal", ...}`.

With no tokens configured authentication is off and every caller is the
principal "". Otherwise each call but health and reflection must carry
`authorization: Bearer <token>` metadata, else UNAUTHENTICATED. The
principal of the call is then available to the servicer through
`current_principal()`; sessions belong to the principal that started them.
"""

from __future__ import annotations

import contextvars
import hmac
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from parley.api.interceptors import CallInterceptor, aborting, with_prologue
from parley.errors import Unauthenticated
from parley.settings import ServerSettings, StartupError

_PRINCIPAL: contextvars.ContextVar[str] = contextvars.ContextVar("parley_principal", default="")
_BEARER = re.compile(r"^Bearer\s+(\S+)\s*$", re.IGNORECASE)
PRINCIPAL_NAME = re.compile(r"^[A-Za-z0-9._@:/-]{1,128}$")


class AuthConfigError(StartupError, ValueError):
    """The token configuration cannot be used; the server refuses to start."""


def current_principal() -> str:
    """The authenticated principal of the call being handled ("" when auth is off)."""
    return _PRINCIPAL.get()


def parse_tokens(text: str, source: str) -> dict[str, str]:
    """Token -> principal from a token file's or variable's text."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AuthConfigError(f"{source}: not valid JSON: {exc}") from None
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise AuthConfigError(f"{source}: the JSON must be an object of token -> principal strings")
        pairs = list(loaded.items())
    else:
        pairs = []
        for n, entry in enumerate(re.split(r"[\n,]", text), 1):
            entry = entry.split("#", 1)[0].strip()
            if not entry:
                continue
            parts = entry.split()
            if len(parts) != 2:
                raise AuthConfigError(f"{source}: entry {n} must be 'token principal'")
            pairs.append((parts[0], parts[1]))
    tokens: dict[str, str] = {}
    for token, principal in pairs:
        if len(token) < 16 or any(c.isspace() for c in token):
            raise AuthConfigError(f"{source}: tokens must be at least 16 characters without spaces")
        if not PRINCIPAL_NAME.match(principal):
            raise AuthConfigError(f"{source}: bad principal {principal!r} (1-128 of A-Z a-z 0-9 . _ @ : / -)")
        if token in tokens:
            raise AuthConfigError(f"{source}: a token is listed twice")
        tokens[token] = principal
    return tokens


def load_tokens(settings: ServerSettings) -> dict[str, str]:
    """Every configured token; the file and the variable may both contribute."""
    tokens = parse_tokens(settings.auth_tokens, "--auth-tokens (PARLEY_AUTH_TOKENS)")
    if settings.auth_tokens_file:
        try:
            text = Path(settings.auth_tokens_file).read_text()
        except OSError as exc:
            raise AuthConfigError(
                f"--auth-tokens-file: cannot read {settings.auth_tokens_file!r}: {exc.strerror}"
            ) from None
        for token, principal in parse_tokens(text, f"--auth-tokens-file {settings.auth_tokens_file!r}").items():
            if tokens.setdefault(token, principal) != principal:
                raise AuthConfigError("--auth-tokens-file: a token maps to two principals")
    return tokens


class TokenTable:
    """Looks a presented token up without leaking, through timing, how much of it matched."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._entries = [(t.encode(), p) for t, p in tokens.items()]

    def principal(self, presented: str) -> str | None:
        given = presented.encode()
        found = None
        for token, principal in self._entries:  # no early exit: every entry is compared
            if hmac.compare_digest(token, given):
                found = principal
        return found


class AuthInterceptor(CallInterceptor):
    """Authenticates every call (but health and reflection) and runs it as its principal."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._table = TokenTable(tokens)

    def intercept(self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        principal = self._authenticate(details.invocation_metadata or ())
        if principal is None:
            return aborting(handler, Unauthenticated("a valid 'authorization: Bearer <token>' is required",
                                                     reason="BAD_TOKEN"))

        async def as_principal(request: Any, context: grpc.aio.ServicerContext) -> None:
            _PRINCIPAL.set(principal)

        return with_prologue(handler, as_principal)

    def _authenticate(self, metadata: Any) -> str | None:
        values = [value for key, value in metadata if key == "authorization"]
        if len(values) != 1 or not isinstance(values[0], str):
            return None
        match = _BEARER.match(values[0])
        return self._table.principal(match.group(1)) if match else None
