"""The wake-up timer: acts once the user and the agent were idle long enough."""

from __future__ import annotations

from collections.abc import Callable

from parley.sessions.clock import Clock, Timer


class WakeUpTimer:
    """Armed while both sides are idle, disarmed by any activity.

    `idle_changed(both_idle)` is called on every state change; the timer
    fires `after_seconds` after the last change into "both idle", once, and
    is armed again only by the next change into "both idle". Firing never
    cancels anything: the action it starts is ordinary speech.
    """

    def __init__(self, after_seconds: float, fire: Callable[[float], None], clock: Clock) -> None:
        self.after_seconds = after_seconds
        self._fire = fire
        self._clock = clock
        self._handle: Timer | None = None
        self._idle = False

    def idle_changed(self, both_idle: bool) -> None:
        if self.after_seconds <= 0 or both_idle == self._idle:
            return
        self._idle = both_idle
        self.cancel()
        if both_idle:
            self._handle = self._clock.call_later(self.after_seconds, self._on_timer)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _on_timer(self) -> None:
        self._handle = None
        self._fire(self.after_seconds)
