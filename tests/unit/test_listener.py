"""The listener on a manual clock: voice edges, the early final, endpointing, merged turns.

The stand-in providers isolate the timing logic: the energy VAD hears tones
as a voice, the scripted STT returns its script, the VAD turn detector picks
the endpointing delay from the words.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from parley.providers import registry
from parley.providers.base import Transcript
from parley.providers.workers import Workers
from parley.sessions.clock import ManualClock
from parley.sessions.config import TurnDetectionConfig
from parley.sessions.listener import Listener, ListenerCallbacks, UserTurn

CHUNK = 320  # 20 ms at 16 kHz
TONE = (8000 * np.sin(2 * np.pi * 300 * np.arange(CHUNK) / 16000)).astype(np.int16)
QUIET = np.zeros(CHUNK, np.int16)


@dataclass
class Heard:
    said: list[str] = field(default_factory=list)

    def callbacks(self, clock: ManualClock) -> ListenerCallbacks:
        def note(what: str) -> None:
            self.said.append(f"{clock.now() - 1000.0:.2f} {what}")

        def transcript(t: Transcript) -> None:
            note(f"{'final' if t.is_final else 'interim'} {t.text!r}")

        def turn(t: UserTurn) -> None:
            note(f"turn {t.text!r}")

        return ListenerCallbacks(
            speech_started=lambda: note("voice"), speech_ended=lambda when: note(f"quiet since {when - 1000.0:.2f}"),
            transcript=transcript, turn_ended=turn, audio_dropped=lambda ms: note(f"dropped {ms}"))


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    pool = Workers(1)
    yield pool
    pool.close()


async def listener(workers: Workers, script: list[str], heard: Heard, clock: ManualClock) -> Listener:
    vad = registry.build("vad", "energy", {}, workers=workers)
    stt = registry.build("stt", "scripted", {"transcripts": script}, workers=workers)
    turns = registry.build("turn_detector", "vad", {}, workers=workers)
    return Listener(vad, stt, turns, TurnDetectionConfig(0.5, 3.0), heard.callbacks(clock), clock)


async def feed(listen: Listener, clock: ManualClock, chunk: np.ndarray, seconds: float) -> None:
    for _ in range(round(seconds / 0.02)):
        clock.advance(0.02)
        listen.feed(chunk)
        for _ in range(3):  # let the recognizer task take what is queued
            await asyncio.sleep(0)


async def test_a_question_ends_its_turn_after_the_short_endpointing_delay(workers: Workers) -> None:
    clock, heard = ManualClock(), Heard()
    listen = await listener(workers, ["what time is it?"], heard, clock)
    await feed(listen, clock, TONE, 0.6)
    await feed(listen, clock, QUIET, 0.5)
    await feed(listen, clock, QUIET, 0.1)
    await listen.aclose()
    assert heard.said == [
        "0.04 voice",  # the VAD needs 40 ms of voice
        "0.76 final 'what time is it?'",  # asked for after 150 ms of quiet, before the VAD's 300 ms hangover
        "0.90 quiet since 0.60",
        "1.10 turn 'what time is it?'",  # a finished question: the minimum delay, counted from the voice's end
    ]


async def test_words_that_trail_off_wait_longer_and_more_words_join_the_same_turn(workers: Workers) -> None:
    clock, heard = ManualClock(), Heard()
    listen = await listener(workers, ["I would like to", "book a table."], heard, clock)
    await feed(listen, clock, TONE, 0.6)
    await feed(listen, clock, QUIET, 1.0)  # "to" asks for more: the turn waits up to 3 s
    assert not any("turn" in line for line in heard.said)
    await feed(listen, clock, TONE, 0.6)  # the caller goes on
    await feed(listen, clock, QUIET, 1.0)
    await listen.aclose()
    turns = [line for line in heard.said if "turn" in line]
    assert turns == ["2.70 turn 'I would like to book a table.'"]


async def test_a_pause_inside_the_hangover_is_one_stretch_of_speech(workers: Workers) -> None:
    clock, heard = ManualClock(), Heard()
    listen = await listener(workers, ["first part", "second part?"], heard, clock)
    await feed(listen, clock, TONE, 0.6)
    await feed(listen, clock, QUIET, 0.2)  # quiet long enough to ask for a final, too short to end the speech
    await feed(listen, clock, TONE, 0.6)
    await feed(listen, clock, QUIET, 1.2)
    await listen.aclose()
    assert [line.split(" ", 1)[1] for line in heard.said] == [
        "voice", "final 'first part'", "final 'second part?'", "quiet since 1.40", "turn 'first part second part?'"]
