"""Barge-in: when the caller's voice pauses, cuts or lets go of the agent's speech.

Only interruptible speech that is playing can be contested, and never in
DISABLED mode. The caller's voice pauses it at once (with a fade) when
resuming is enabled, and so does agent speech that starts while the caller
is already talking: the agent never talks over the caller, and goes on when
they stop (their words, said before it began, do not cut it). Voice lasting
`min_duration_seconds` (VAD_ONLY, HYBRID) or `min_words` transcribed words
(STT_ONLY, HYBRID) cuts it.

When the caller stops before either, the speech recognizer's final
transcript of what was said is the verdict: enough words cut the paused
speech; fewer (a cough, a click, a backchannel) make it a false interruption
and the speech resumes at once. A recognizer that has not answered within
`false_interruption_pause_seconds` of the end of the caller's voice does not
hold the agent any longer: the speech resumes then, and late words that are
enough still cut it. In VAD_ONLY mode words do not count, so the speech
resumes as soon as that window has passed.
"""

from __future__ import annotations

from typing import Protocol

from parley.sessions.clock import Clock, Timer
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

    def __init__(self, config: InterruptionConfig, actions: BargeInActions, clock: Clock) -> None:
        self._config = config
        self._act = actions
        self._clock = clock
        self.paused: Utterance | None = None
        self._contested: Utterance | None = None  # the speech the caller's ongoing voice is up against
        self._judged: Utterance | None = None  # the caller stopped; their final transcript decides its fate
        self._resumed_unjudged = False  # the window ran out before the verdict: speech already resumed
        self._waiting_for_caller = False  # the contested speech began while the caller was talking
        self._caller_speaking = False
        self._words = 0
        self._voice_timer: Timer | None = None
        self._resume_timer: Timer | None = None

    # -- the caller ---------------------------------------------------------------

    def speech_started(self) -> None:
        """The caller's voice began."""
        self._caller_speaking = True
        self._words = 0
        self._judged = None
        self._waiting_for_caller = False
        self._cancel_resume()
        self._contest(self._act.current())

    def speech_ended(self, end_time: float) -> None:
        """The caller's voice ended at `end_time` (clock seconds; the VAD tells it a little later)."""
        self._caller_speaking = False
        self._cancel_voice()
        contested, self._contested = self._contested, None
        if contested is None or contested.final:
            return
        if self._waiting_for_caller:  # words said before it began are not against it: it just waited
            self._waiting_for_caller = False
            paused, self.paused = self.paused, None
            if paused is not None:
                self._act.resume(paused)
            return
        if self._config.mode in WORD_MODES:
            self._judged, self._resumed_unjudged = contested, False
        if self.paused is not None:
            window = self._config.false_interruption_pause_seconds
            self._resume_timer = self._clock.call_later(end_time + window - self._clock.now(), self._window_passed)
        elif self._judged is None:
            self._act.false_interruption(contested)  # it played on and words do not count: nothing was cut

    def heard_words(self, count: int, *, final: bool) -> None:
        """A transcript of the caller's latest speech has `count` words; a final one is the verdict."""
        self._words = max(self._words, count)
        if self._config.mode in WORD_MODES and self._words >= self._config.min_words and not self._waiting_for_caller:
            target = self._contested or self._judged or self.paused
            if target is not None and not target.final:
                self._act.cut()
            return
        judged = self._judged
        if not final or judged is None:
            return
        self._judged = None
        if judged is self.paused:
            self._resume()
        elif not judged.final and not self._resumed_unjudged:
            self._act.false_interruption(judged)  # it played on: nothing was cut

    # -- the agent ------------------------------------------------------------------

    def agent_started(self, utterance: Utterance) -> None:
        """An utterance began to play: if the caller is talking, it waits for them.

        Their words so far were said before it began, so they do not cut it;
        their voice going on for `min_duration_seconds` does.
        """
        if self._caller_speaking and self._contested is None:
            self._waiting_for_caller = True
            self._contest(utterance)

    def reset(self) -> None:
        """The speech was cut (by the caller or by a call): nothing is contested any more."""
        self._cancel_voice()
        self._cancel_resume()
        self.paused = self._contested = self._judged = None
        self._waiting_for_caller = False

    def utterance_ended(self, utterance: Utterance) -> None:
        if self.paused is utterance:
            self._cancel_resume()
            self.paused = None
        if self._contested is utterance:
            self._cancel_voice()
            self._contested = None
        if self._judged is utterance:
            self._judged = None

    def close(self) -> None:
        self._cancel_voice()
        self._cancel_resume()

    # -- internals ------------------------------------------------------------------

    def _contest(self, current: Utterance | None) -> None:
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
            self._voice_timer = self._clock.call_later(self._config.min_duration_seconds, self._voice_long_enough)

    def _voice_long_enough(self) -> None:
        self._voice_timer = None
        if self._contested is not None and not self._contested.final:
            self._act.cut()

    def _window_passed(self) -> None:
        """No verdict in time: the agent does not wait any longer; late words may still cut."""
        self._resume_timer = None
        self._resumed_unjudged = self._judged is not None
        self._resume()

    def _resume(self) -> None:
        """A false interruption: the paused speech goes on."""
        self._cancel_resume()
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
