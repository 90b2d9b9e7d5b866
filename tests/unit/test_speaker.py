"""The speaker with a real mixer and the tone stand-in TTS, frame by frame, no clock: play-out and heard text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from parley.audio.mixer import Mixer
from parley.errors import ResourceExhausted
from parley.providers import registry
from parley.providers.workers import Workers
from parley.sessions.speech import Speaker, SpeechJob
from parley.sessions.states import UtteranceSource, UtteranceState
from parley.sessions.utterance import Utterance

RATE = 16000  # the tone stand-in's rate: no resampling, so sample counts are exact
MS_PER_CHAR = 20


@dataclass
class Heard:
    """The speaker's callbacks, recorded."""

    events: list[str] = field(default_factory=list)

    def utterance_changed(self, u: Utterance) -> None:
        self.events.append(f"{u.id} {u.state.name.lower()}")

    async def agent_text(self, u: Utterance, text: str) -> str:
        return text

    def speech_started(self, u: Utterance) -> None:
        pass

    def speech_finished(self, u: Utterance) -> None:
        pass

    def thinking(self, active: bool) -> None:
        pass

    def warning(self, reason: str, message: str, u: Utterance) -> None:
        self.events.append(f"{u.id} warning {reason}")

    def tts_first_byte(self, u: Utterance, ms: float) -> None:
        pass

    def synthesis_finished(self, u: Utterance) -> None:
        pass


@pytest.fixture
async def speaker() -> AsyncIterator[tuple[Speaker, Mixer, Heard]]:
    workers = Workers(1)
    tts = registry.build("tts", "tone", {"sample_rate": RATE, "ms_per_char": MS_PER_CHAR}, workers=workers)
    mixer = Mixer(RATE, speech_limit_ms=200)
    heard = Heard()
    speaker = Speaker(tts, mixer, heard, max_queued=2)
    yield speaker, mixer, heard
    await speaker.aclose()
    workers.close()


def say(speaker: Speaker, text: str, n: int) -> Utterance:
    utterance = Utterance(f"u{n}", UtteranceSource.SAY, text)

    async def pieces() -> AsyncIterator[str]:
        yield text

    speaker.enqueue(SpeechJob(utterance, pieces))
    return utterance


async def play(mixer: Mixer, speaker: Speaker, frames: int) -> None:
    for _ in range(frames):
        await asyncio.sleep(0)  # synthesis runs between frames
        mixer.mix_frame()
        speaker.on_frame()


async def test_an_utterance_is_played_only_after_its_last_frame(speaker: tuple[Speaker, Mixer, Heard]) -> None:
    s, mixer, heard = speaker
    u = say(s, "hi there", 1)  # 8 characters x 20 ms = 160 ms = 8 frames
    states = []
    for _ in range(12):
        await play(mixer, s, 1)
        states.append(u.state)
    sounding = [st for st in states if st is not UtteranceState.QUEUED]
    assert sounding[:8] == [UtteranceState.SPEAKING] * 7 + [UtteranceState.PLAYED]  # PLAYED with its 8th frame
    assert u.heard_text == "hi there" and u.played_ms == 160


async def test_a_long_utterance_refills_the_mixer_in_steps_and_never_runs_dry(
    speaker: tuple[Speaker, Mixer, Heard], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The speech queue is topped up once half of it has played, not after every frame: fewer, larger pushes."""
    s, mixer, heard = speaker
    pushes = []
    push_speech = mixer.push_speech
    monkeypatch.setattr(mixer, "push_speech", lambda pcm, tag: pushes.append(len(pcm)) or push_speech(pcm, tag))
    u = say(s, "x" * 100, 1)  # 100 characters x 20 ms = 2 s = 100 frames, ten times the mixer's 200 ms queue
    await asyncio.sleep(0)  # synthesized and first pushed before the first frame
    speech_frames = []
    for _ in range(100):
        await play(mixer, s, 1)
        speech_frames.append(mixer.speaking)
    assert all(speech_frames)  # every frame of the utterance carried speech
    assert u.state is UtteranceState.PLAYED and u.played_ms == 2000
    assert len(pushes) <= 100 // 4, f"{len(pushes)} pushes for 100 frames"
    assert sum(pushes) == 2 * RATE


async def test_interrupted_speech_keeps_only_the_words_played_out(speaker: tuple[Speaker, Mixer, Heard]) -> None:
    s, mixer, heard = speaker
    u = say(s, "one two three four", 1)
    await play(mixer, s, 10)  # 200 ms: "one" (60 ms), a space, "two" (ends at 140 ms), into "three"
    s.interrupt(include_queued=False, fade_ms=0, force=False, reason="INTERRUPT_CALLED")
    assert u.state is UtteranceState.INTERRUPTED and u.end_reason == "INTERRUPT_CALLED"
    assert u.heard_text == "one two" and u.played_ms == 200


async def test_the_queue_is_bounded_and_plays_in_order(speaker: tuple[Speaker, Mixer, Heard]) -> None:
    s, mixer, heard = speaker
    first, second, third = say(s, "ab", 1), say(s, "cd", 2), say(s, "ef", 3)
    with pytest.raises(ResourceExhausted):
        say(s, "gh", 4)
    await play(mixer, s, 12)
    assert [u.state for u in (first, second, third)] == [UtteranceState.PLAYED] * 3
    played = [e for e in heard.events if e.endswith("played")]
    assert played == ["u1 played", "u2 played", "u3 played"]


async def test_a_reply_with_nothing_to_say_is_asked_twice_then_fails_with_a_reason(speaker: tuple[Speaker, Mixer, Heard]) -> None:
    s, mixer, heard = speaker
    asked = 0
    u = Utterance("u1", UtteranceSource.REPLY)

    async def nothing() -> AsyncIterator[str]:
        nonlocal asked
        asked += 1
        yield "   "

    s.enqueue(SpeechJob(u, nothing, is_reply=True))
    await play(mixer, s, 3)
    assert asked == 2
    assert u.state is UtteranceState.FAILED and u.end_reason == "REPLY_EMPTY" and u.played_ms == 0
    assert "u1 warning REPLY_EMPTY" in heard.events


async def test_unheard_replies_give_way_but_speech_already_heard_does_not(speaker: tuple[Speaker, Mixer, Heard]) -> None:
    s, mixer, heard = speaker
    playing, waiting = say(s, "long enough words", 1), say(s, "later", 2)
    await play(mixer, s, 3)
    cut = s.cancel_unheard({"u1", "u2"}, reason="SUPERSEDED")
    assert cut == [waiting] and waiting.end_reason == "SUPERSEDED"
    assert playing.state is UtteranceState.SPEAKING  # already heard: it plays on
