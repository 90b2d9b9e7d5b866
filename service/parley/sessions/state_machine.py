"""The agent's and the caller's states, derived from what is going on, and the wake-up timer.

The agent state is never set by hand: SPEAKING while an utterance plays (and
is not paused), else THINKING while a reply waits for its first audio, else
LISTENING while the caller speaks, else IDLE; STARTING before the session
started and CLOSING once it closes. Every change is published as an event.
The wake-up timer is armed on each change into "agent idle, caller not
speaking, nothing queued" and disarmed by any other change.
"""

from __future__ import annotations

from collections.abc import Callable

from parley.sessions import events as ev
from parley.sessions.clock import Clock
from parley.sessions.states import AgentState, UserState
from parley.sessions.wakeup import WakeUpTimer


class StateMachine:
    """`audible()`: an utterance is playing and not paused; `busy()`: speech is playing or queued."""

    def __init__(
        self, bus: ev.EventBus, audible: Callable[[], bool], busy: Callable[[], bool], clock: Clock, *,
        wake_up_after: float, on_wake_up: Callable[[float], None],
    ) -> None:
        self._bus = bus
        self._audible = audible
        self._busy = busy
        self.agent = AgentState.STARTING
        self.user = UserState.IDLE
        self.thinking = False
        self._closed = False
        self._wakeup = WakeUpTimer(wake_up_after, on_wake_up, clock)

    def started(self) -> None:
        self._set_agent(AgentState.IDLE)

    def closing(self) -> None:
        self._closed = True
        self._wakeup.cancel()
        self._set_agent(AgentState.CLOSING)

    def set_user(self, state: UserState) -> None:
        if state is not self.user:
            old, self.user = self.user, state
            self._bus.publish(ev.UserStateChanged(old, state))
        self.refresh()

    def set_thinking(self, active: bool) -> bool:
        """Whether it changed."""
        if active == self.thinking:
            return False
        self.thinking = active
        self.refresh()
        return True

    def refresh(self) -> None:
        """Derive the agent state from what is going on now."""
        if self._closed or self.agent is AgentState.STARTING:
            return
        if self._audible():
            state = AgentState.SPEAKING
        elif self.thinking:
            state = AgentState.THINKING
        elif self.user is UserState.SPEAKING:
            state = AgentState.LISTENING
        else:
            state = AgentState.IDLE
        self._set_agent(state)

    def _set_agent(self, state: AgentState) -> None:
        if state is not self.agent:
            old, self.agent = self.agent, state
            self._bus.publish(ev.AgentStateChanged(old, state))
        self._wakeup.idle_changed(
            not self._closed and self.agent is AgentState.IDLE and self.user is not UserState.SPEAKING
            and not self._busy()
        )
