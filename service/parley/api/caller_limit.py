"""The per-caller request limit: every call a caller makes, Start and Close included, takes a token.

Separate from the per-session limit (`--max-requests-per-second`), which only
covers calls on one session. The caller is the authenticated principal, or,
with authentication off, the peer's address without its port. Buckets are
kept for the most recently seen callers only (an evicted caller starts again
with a full bucket), so memory stays bounded however many addresses call.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import grpc

from parley.api.auth import current_principal
from parley.api.interceptors import CallInterceptor, with_prologue
from parley.sessions.ratelimit import TokenBucket

CALLERS_KEPT = 10_000
LIMIT = "max_caller_requests_per_second"


def peer_host(peer: str) -> str:
    """"ipv4:1.2.3.4:5678" -> "ipv4:1.2.3.4", "ipv6:[::1]:5678" -> "ipv6:[::1]"; other forms unchanged."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in rest:
        return f"{kind}:{rest.rsplit(':', 1)[0]}"
    return peer


class CallerRateLimit(CallInterceptor):
    """A token bucket per caller over every call of the service (health and reflection stay free)."""

    def __init__(self, rate: float, burst: int, *, callers_kept: int = CALLERS_KEPT) -> None:
        self._rate = rate
        self._burst = burst
        self._kept = callers_kept
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def intercept(self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return with_prologue(handler, self._take)

    async def _take(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        caller = current_principal() or peer_host(context.peer() or "")
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = TokenBucket(self._rate, self._burst, LIMIT, holder="from this caller")
            while len(self._buckets) > self._kept:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller)
        bucket.take()
