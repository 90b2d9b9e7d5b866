from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from parley.providers.text import segments


def test_sentences_and_long_clauses_split() -> None:
    text = "Hi. I looked at the calendar for next week, and Tuesday is free; shall I book it?"
    assert segments(text, clause_chars=30) == [
        "Hi.",
        "I looked at the calendar for next week,",
        "and Tuesday is free; shall I book it?",
    ]


def test_long_run_without_punctuation_is_cut_at_words() -> None:
    text = " ".join(["word"] * 100)
    pieces = segments(text, max_chars=50)
    assert all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces) == text


@given(st.text(alphabet=st.sampled_from("ab .,;!?\n"), max_size=300))
def test_segments_keep_every_word_in_order(text: str) -> None:
    assert " ".join(segments(text, clause_chars=10, max_chars=30)).split() == text.split()
