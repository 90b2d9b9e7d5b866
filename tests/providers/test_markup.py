"""Markup in a model's text is taken out before speech, the words kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.providers.markup import speakable
from parley.sessions.replies import SentenceBuffer


@pytest.mark.parametrize(("text", "spoken"), [
    ("<em>Hello</em> there, <b>friend</b>.", "Hello there, friend."),
    ("<<SYS>> Be brief. <</SYS>> [INST] Hi [/INST] Sure!", "Be brief. Hi Sure!"),
    ("<s>[INST] Hi [/INST] Hello!</s>", "Hi Hello!"),
    ("Done.<|eot_id|>", "Done."),
    ("It is **sunny** and *warm*, ~~cold~~ ___never___.", "It is sunny and warm, cold never."),
    ("# Weather\n- **Today**: sunny, 20 &deg;C\n* Tomorrow: rain\n> quoted", "Weather Today: sunny, 20 °C Tomorrow: rain quoted"),
    ("Run `make run`, then see [the README](https://example.org/README.md).", "Run make run, then see the README."),
    ("![a chart](chart.png) shows it.", "a chart shows it."),
    ("```python\nprint(1)\n```", "print(1)"),
    ("| city | temp |\n|---|---|\n| Paris | 20 |", "city temp Paris 20"),
    ("Line one<br/>line two<!-- hidden -->.", "Line one line two."),
])
def test_markup_is_taken_out(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


@pytest.mark.parametrize("text", [
    "3 < 5 and 6 > 4.", "2 * 3 = 6", "snake_case names stay", "I'm fine — thanks! Really?", "Price: $5, 50% off.",
])
def test_plain_text_is_left_alone(text: str) -> None:
    assert speakable(text) == text


def test_a_pair_split_across_pieces_loses_both_halves() -> None:
    buffer = SentenceBuffer()
    pieces = buffer.push("**This sentence is bold. And so ") + buffer.push("is this one.** <em>Fine</em>.") + buffer.flush()
    assert pieces == ["This sentence is bold.", "And so is this one. Fine."]


def test_a_piece_of_markup_only_is_not_spoken() -> None:
    buffer = SentenceBuffer()
    assert buffer.push("Here it is.\n---\n") + buffer.push("<|eot_id|>") + buffer.flush() == ["Here it is."]


@given(st.text(alphabet=st.sampled_from("ab .,*_#<>/`[]()|-\n"), max_size=200))
def test_never_adds_words(text: str) -> None:
    spoken = speakable(text)
    assert spoken == spoken.strip() and "\n" not in spoken
    letters = lambda s: [c for c in s if c in "ab"]  # noqa: E731
    assert len(letters(spoken)) <= len(letters(text))
