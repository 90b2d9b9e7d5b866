"""Reply text into speakable pieces: the first piece early, then whole sentences."""

from __future__ import annotations

from parley.sessions.replies import SentenceBuffer


def stream(buffer: SentenceBuffer, text: str) -> list[str]:
    pieces: list[str] = []
    for token in text.split(" "):
        pieces += buffer.push(token + " ")
    return pieces + buffer.flush()


def test_the_first_piece_ends_at_a_clause_mark_then_pieces_are_sentences() -> None:
    text = "Certainly madam, it opens at nine on Sundays, and closes at five. Tickets cost ten euros, cash only."
    assert stream(SentenceBuffer(), text) == [
        "Certainly madam,", "it opens at nine on Sundays, and closes at five.", "Tickets cost ten euros, cash only."]


def test_the_first_piece_is_released_after_a_few_words_without_punctuation() -> None:
    pieces = stream(SentenceBuffer(), "the weather today is sunny and warm all day long everywhere")
    assert pieces[0] == "the weather today is sunny"
    assert " ".join(pieces) == "the weather today is sunny and warm all day long everywhere"


def test_a_later_round_keeps_sentences_whole() -> None:
    text = "It is, as far as I know, sunny today. Bring a hat."
    assert stream(SentenceBuffer(first=False), text) == ["It is, as far as I know, sunny today.", "Bring a hat."]


def test_no_word_is_lost_or_split() -> None:
    text = "One two three, four five six seven eight. Nine ten; eleven twelve thirteen fourteen fifteen sixteen."
    pieces = stream(SentenceBuffer(), text)
    assert " ".join(pieces).split() == text.split()
