from __future__ import annotations

import pytest

from parley.providers import registry
from parley.providers.workers import Workers

MIN, MAX = 0.5, 3.0


@pytest.fixture
def delay(workers: Workers):
    detector = registry.build("turn_detector", "", {}, workers=workers)
    return lambda text: detector.endpoint_delay(text, MIN, MAX)


@pytest.mark.parametrize("text", ["What is the weather today?", "Book it for Monday.", "what time is it now"])
def test_finished_sentences_wait_the_minimum(delay, text: str) -> None:
    assert delay(text) == MIN


@pytest.mark.parametrize("text", ["I want to go to the", "um", "and then,", "", "my number is five and"])
def test_trailing_off_waits_the_maximum(delay, text: str) -> None:
    assert delay(text) == MAX


def test_undecided_waits_in_between(delay) -> None:
    assert MIN < delay("my name is Sam") < MAX


def test_unsure_fraction_option(workers: Workers) -> None:
    detector = registry.build("turn_detector", "vad", {"unsure_fraction": 0.0}, workers=workers)
    assert detector.endpoint_delay("my name is Sam", MIN, MAX) == MIN
