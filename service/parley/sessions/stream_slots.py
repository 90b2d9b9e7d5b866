"""How many calls the process carries at once: one slot per session with audio attached.

An attached stream is what costs CPU every 20 ms (its frames out, its
caller's chunks in), not an open session, so this is the limit to size from
the capacity table: past it a new stream is refused with RESOURCE_EXHAUSTED
(limit `max_streams`) and the calls already admitted keep their frame
timing, instead of every call falling behind together.

A session keeps its slot while its caller may still come back (its reattach
window): a call that drops and reconnects is never refused in favour of a
newer one. Taking over a session's stream keeps the same slot.

Whoever must act when the last slot is taken or one frees again (the
server's Start-only listener, which a proxy then skips) watches `full`.
"""

from __future__ import annotations

from collections.abc import Callable

from parley.errors import ResourceExhausted


class StreamSlots:
    """Shared by the sessions of one registry; `limit` None: no limit (an embedder's own sessions)."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.in_use = 0
        self.refused = 0  # streams refused so far
        self._watchers: list[Callable[[], None]] = []

    @property
    def full(self) -> bool:
        return self.limit is not None and self.in_use >= self.limit

    def watch_full(self, watcher: Callable[[], None]) -> None:
        """Call `watcher()` each time `full` changes (the last slot taken, or one freed from full)."""
        self._watchers.append(watcher)

    def take(self) -> None:
        if self.full:
            self.refused += 1
            raise ResourceExhausted(
                "max_streams", f"the server carries its maximum of {self.limit} audio streams; retry later")
        self.in_use += 1
        if self.full:
            self._notify()

    def give_back(self) -> None:
        was_full = self.full
        self.in_use -= 1
        if was_full:
            self._notify()

    def _notify(self) -> None:
        for watcher in self._watchers:
            watcher()
