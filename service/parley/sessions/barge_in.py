"""Barge-in: when the caller's voice pauses, cuts or lets go of the agent's speech.

Only interruptible speech that is playing can be contested, and never in
DISABLED mode. Voice activity pauses it at once (with a fade) when resuming
is enabled. The caller's voice lasting `min_duration_seconds` (VAD_ONLY,
HYBRID) or `min_words` transcribed words (STT_ONLY, HYBRID) cuts it. If the
caller stops and no words follow within `false_interruption_pause_seconds`,
it was a false interruption: paused speech resumes.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from parley.sessions.config import InterruptionConfig, InterruptionMode
from parley.sessions.states import UtteranceState
from parley.sessions.utterance import Utterance

VOICE_MODES = (InterruptionMode.HYBRID, InterruptionMode.VAD_ONLY)
WORD_MODES = (InterruptionMode.HYBRID, InterruptionMode.STT_ONLY)


class BargeInActions(Protocol):
    """What barge-in does to the session."""

    def current(self) -> Utterance | None: ...

    def pause(self, utterance: Utterance) -> None: ...

    def resume(self, utterance: Utterance) -> None: ...

    def cut(self) -> None: ...

    def false_interruption(self, utterance: Utterance) -> None: ...


class BargeIn:
    """The barge-in decisions of one session, with their two timers."""

    def __init__(self, config: InterruptionConfig, actions: BargeInActions) -> None:
        self._config = config
        self._act = actions
        self.paused: Utterance | None = None
        self._contested: Utterance | None = None  # the speech the caller's current words are up against
        self._words = 0
        self._voice_timer: asyncio.TimerHandle | None = None
        self._resume_timer: asyncio.TimerHandle | None = None

    def speech_started(self) -> None:
        self._words = 0
        self._cancel_resume()
        current = self._act.current()
        if (
            current is None or not current.interruptible or current.state is not UtteranceState.SPEAKING
            or self._config.mode is InterruptionMode.DISABLED
        ):
            self._contested = None
            return
        self._contested = current
        if self.paused is None and self._config.resume_on_false_interruption:
            self.paused = current
            self._act.pause(current)
        if self._config.mode in VOICE_MODES:
            self._cancel_voice()
            self._voice_timer = asyncio.get_running_loop().call_later(
                self._config.min_duration_seconds, self._voice_long_enough
            )

    def speech_ended(self) -> None:
        self._cancel_voice()
        if self.paused is not None:
            self._resume_timer = asyncio.get_running_loop().call_later(
                self._config.false_interruption_pause_seconds, self._no_words_followed
            )
        elif self._contested is not None and not self._contested.final:
            self._act.false_interruption(self._contested)  # it played on: nothing was cut
        self._contested = None

    def heard_words(self, count: int, caller_speaking: bool) -> None:
        """A transcript of the caller's current speech has `count` words."""
        self._words = max(self._words, count)
        target = self.paused or (self._contested if caller_speaking else None)
        if (
            self._config.mode in WORD_MODES and target is not None and not target.final
            and self._words >= self._config.min_words
        ):
            self._act.cut()

    def turn_ended(self) -> None:
        """The caller's turn ended with words: paused speech is cut, not resumed."""
        if self.paused is not None:
            self._act.cut()

    def reset(self) -> None:
        """The speech was cut (by the caller or by a call): nothing is contested any more."""
        self._cancel_voice()
        self._cancel_resume()
        self.paused = None
        self._contested = None

    def utterance_ended(self, utterance: Utterance) -> None:
        if self.paused is utterance:
            self.paused = None

    def close(self) -> None:
        self._cancel_voice()
        self._cancel_resume()

    def _voice_long_enough(self) -> None:
        self._voice_timer = None
        if self._contested is not None and not self._contested.final:
            self._act.cut()

    def _no_words_followed(self) -> None:
        self._resume_timer = None
        paused, self.paused = self.paused, None
        if paused is not None and not paused.final:
            self._act.false_interruption(paused)
            self._act.resume(paused)

    def _cancel_voice(self) -> None:
        if self._voice_timer is not None:
            self._voice_timer.cancel()
            self._voice_timer = None

    def _cancel_resume(self) -> None:
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
