"""Barge-in decisions on a manual clock: pause, cut, resume, false interruptions."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from parley.sessions.barge_in import BargeIn
from parley.sessions.clock import ManualClock
from parley.sessions.config import InterruptionConfig, InterruptionMode
from parley.sessions.states import UtteranceSource, UtteranceState
from parley.sessions.utterance import Utterance


@dataclass
class Session:
    """The session side of barge-in, recorded: what is playing and what barge-in did to it."""

    playing: Utterance | None = None
    did: list[str] = field(default_factory=list)

    def current(self) -> Utterance | None:
        return self.playing

    def pause(self, utterance: Utterance) -> None:
        self.did.append(f"pause {utterance.id}")

    def resume(self, utterance: Utterance) -> None:
        self.did.append(f"resume {utterance.id}")

    def cut(self) -> None:
        assert self.playing is not None
        self.did.append(f"cut {self.playing.id}")
        self.playing.finish(UtteranceState.INTERRUPTED)

    def false_interruption(self, utterance: Utterance) -> None:
        self.did.append(f"false {utterance.id}")


def speaking(utterance_id: str = "u1", interruptible: bool = True) -> Utterance:
    u = Utterance(utterance_id, UtteranceSource.SAY, "some words", interruptible=interruptible)
    u.mark_speaking()
    return u


def setup(**config) -> tuple[BargeIn, Session, ManualClock]:
    clock = ManualClock()
    session = Session(playing=speaking())
    return BargeIn(InterruptionConfig(**config), session, clock), session, clock


async def test_voice_pauses_then_enough_voice_cuts() -> None:
    barge_in, session, clock = setup(min_duration_seconds=0.5)
    barge_in.speech_started()
    assert session.did == ["pause u1"]
    clock.advance(0.49)
    assert session.did == ["pause u1"]
    clock.advance(0.02)
    assert session.did == ["pause u1", "cut u1"]


async def test_a_cough_resumes_as_soon_as_the_transcript_says_no_words() -> None:
    barge_in, session, clock = setup()
    barge_in.speech_started()
    clock.advance(0.15)
    end = clock.now()
    clock.advance(0.3)  # the VAD's hangover
    barge_in.speech_ended(end)
    clock.advance(0.1)
    barge_in.heard_words(0, final=True)
    assert session.did == ["pause u1", "false u1", "resume u1"]
    assert clock.now() - end == pytest.approx(0.4)  # well inside the window: no waiting it out
    assert clock.pending == 0


async def test_words_after_the_voice_stopped_cut_the_paused_speech() -> None:
    barge_in, session, clock = setup(min_words=2)
    barge_in.speech_started()
    clock.advance(0.3)
    barge_in.speech_ended(clock.now())
    barge_in.heard_words(3, final=True)
    assert session.did == ["pause u1", "cut u1"]


async def test_a_slow_recognizer_does_not_hold_the_agent_past_the_window_but_late_words_still_cut() -> None:
    barge_in, session, clock = setup(false_interruption_pause_seconds=1.0)
    barge_in.speech_started()
    clock.advance(0.3)
    end = clock.now()
    barge_in.speech_ended(end)
    clock.advance(0.99)
    assert session.did == ["pause u1"]
    clock.advance(0.02)
    assert session.did == ["pause u1", "false u1", "resume u1"]
    barge_in.heard_words(4, final=True)
    assert session.did[-1] == "cut u1"


async def test_late_noise_after_the_window_counts_once() -> None:
    barge_in, session, clock = setup(false_interruption_pause_seconds=0.5)
    barge_in.speech_started()
    barge_in.speech_ended(clock.now())
    clock.advance(0.6)
    barge_in.heard_words(0, final=True)
    assert session.did == ["pause u1", "false u1", "resume u1"]


async def test_interim_words_cut_while_the_caller_is_still_talking() -> None:
    barge_in, session, clock = setup(mode=InterruptionMode.STT_ONLY, min_words=2)
    barge_in.speech_started()
    clock.advance(2.0)  # no voice timer in STT_ONLY
    assert session.did == ["pause u1"]
    barge_in.heard_words(1, final=False)
    assert session.did == ["pause u1"]
    barge_in.heard_words(2, final=False)
    assert session.did == ["pause u1", "cut u1"]


async def test_vad_only_resumes_after_the_window_whatever_the_words() -> None:
    barge_in, session, clock = setup(mode=InterruptionMode.VAD_ONLY, min_duration_seconds=0.5,
                                     false_interruption_pause_seconds=0.4)
    barge_in.speech_started()
    clock.advance(0.2)
    barge_in.speech_ended(clock.now())
    barge_in.heard_words(5, final=True)
    assert session.did == ["pause u1"]
    clock.advance(0.41)
    assert session.did == ["pause u1", "false u1", "resume u1"]


async def test_without_resuming_a_short_voice_plays_on_and_counts_once() -> None:
    barge_in, session, clock = setup(resume_on_false_interruption=False, min_words=2)
    barge_in.speech_started()
    clock.advance(0.2)
    barge_in.speech_ended(clock.now())
    assert session.did == []
    barge_in.heard_words(1, final=True)
    assert session.did == ["false u1"]


async def test_speech_that_starts_while_the_caller_talks_waits_for_them() -> None:
    barge_in, session, clock = setup(min_duration_seconds=0.5, min_words=2)
    session.playing = None
    barge_in.speech_started()
    clock.advance(0.2)
    session.playing = speaking("u2")
    barge_in.agent_started(session.playing)
    assert session.did == ["pause u2"]
    barge_in.heard_words(5, final=False)  # words said before it began
    clock.advance(0.3)
    barge_in.speech_ended(clock.now())
    assert session.did == ["pause u2", "resume u2"]  # it waited, then went on
    barge_in.heard_words(5, final=True)
    assert session.did == ["pause u2", "resume u2"]


async def test_a_caller_who_goes_on_talking_cuts_speech_that_began_over_them() -> None:
    barge_in, session, clock = setup(min_duration_seconds=0.5)
    session.playing = None
    barge_in.speech_started()
    clock.advance(1.0)
    session.playing = speaking("u2")
    barge_in.agent_started(session.playing)
    clock.advance(0.5)
    assert session.did == ["pause u2", "cut u2"]


@pytest.mark.parametrize("how", ["not interruptible", "disabled"])
async def test_speech_that_may_not_be_cut_is_left_alone(how: str) -> None:
    config = {"mode": InterruptionMode.DISABLED} if how == "disabled" else {}
    barge_in, session, clock = setup(**config)
    if how == "not interruptible":
        session.playing = speaking(interruptible=False)
    barge_in.speech_started()
    clock.advance(2.0)
    barge_in.heard_words(10, final=False)
    barge_in.speech_ended(clock.now())
    barge_in.heard_words(10, final=True)
    clock.advance(2.0)
    assert session.did == []


async def test_a_cut_by_a_call_clears_everything_and_no_timer_fires_later() -> None:
    barge_in, session, clock = setup()
    barge_in.speech_started()
    barge_in.reset()
    barge_in.speech_ended(clock.now())
    clock.advance(5.0)
    assert session.did == ["pause u1"] and clock.pending == 0
