"""Utterances: handles on pieces of agent speech, final when played out."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass

from parley.errors import InvalidArgument
from parley.sessions.states import UtteranceSource, UtteranceState


@dataclass(frozen=True)
class UtteranceSnapshot:
    id: str
    state: UtteranceState
    source: UtteranceSource
    text: str
    heard_text: str
    interruptible: bool
    played_ms: int
    error: str
    end_reason: str
    create_time: float
    start_time: float | None
    end_time: float | None


class Utterance:
    """A piece of agent speech and its lifecycle.

    The state only moves forward: QUEUED -> SPEAKING -> PLAYED | INTERRUPTED,
    or to FAILED from anywhere not final. `done` resolves on the final state.
    """

    def __init__(
        self, utterance_id: str, source: UtteranceSource, text: str = "", *, interruptible: bool = True,
        add_to_context: bool = True,
    ) -> None:
        self.id = utterance_id
        self.source = source
        self.text = text
        self.interruptible = interruptible
        self.add_to_context = add_to_context
        self.state = UtteranceState.QUEUED
        self.heard_text = ""
        self.played_ms = 0
        self.error = ""
        self.end_reason = ""  # why it was INTERRUPTED or FAILED, as a stable code
        self.create_time = time.time()
        self.start_time: float | None = None
        self.end_time: float | None = None
        self.done: asyncio.Future[UtteranceSnapshot] = asyncio.get_running_loop().create_future()

    @property
    def final(self) -> bool:
        return self.state.final

    def mark_speaking(self) -> bool:
        if self.state is not UtteranceState.QUEUED:
            return False
        self.state = UtteranceState.SPEAKING
        self.start_time = time.time()
        return True

    def finish(
        self, state: UtteranceState, *, heard_text: str | None = None, error: str = "", reason: str = ""
    ) -> bool:
        """Move to a final state once; returns False if it was already final."""
        if self.final:
            return False
        self.state = state
        if heard_text is not None:
            self.heard_text = heard_text
        self.error = error
        self.end_reason = reason
        self.end_time = time.time()
        if not self.done.done():
            self.done.set_result(self.snapshot())
        return True

    def snapshot(self) -> UtteranceSnapshot:
        return UtteranceSnapshot(
            id=self.id, state=self.state, source=self.source, text=self.text, heard_text=self.heard_text,
            interruptible=self.interruptible, played_ms=self.played_ms, error=self.error, end_reason=self.end_reason,
            create_time=self.create_time, start_time=self.start_time, end_time=self.end_time,
        )


class UtteranceStore:
    """A session's utterances: new ids, lookup by id, and the recent ones that Get shows.

    Bounded: `recent` utterances are shown; lookups reach four times as far
    back, older ones are forgotten.
    """

    def __init__(self, recent: int = 50) -> None:
        self._ids = itertools.count(1)
        self._by_id: dict[str, Utterance] = {}
        self._recent: deque[Utterance] = deque(maxlen=recent)
        self._keep = 4 * recent

    def new(self, source: UtteranceSource, text: str, *, interruptible: bool, add_to_context: bool) -> Utterance:
        utterance = Utterance(f"u{next(self._ids)}", source, text, interruptible=interruptible,
                              add_to_context=add_to_context)
        self._by_id[utterance.id] = utterance
        self._recent.append(utterance)
        while len(self._by_id) > self._keep:
            self._by_id.pop(next(iter(self._by_id)))
        return utterance

    def get(self, utterance_id: str) -> Utterance:
        found = self._by_id.get(utterance_id)
        if found is None:
            raise InvalidArgument("utterance_id", f"no utterance {utterance_id[:80]!r} in this session")
        return found

    def recent(self) -> tuple[UtteranceSnapshot, ...]:
        return tuple(u.snapshot() for u in self._recent)
