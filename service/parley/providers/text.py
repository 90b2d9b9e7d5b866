"""Splitting text into pieces that a TTS engine can speak one at a time.

Speaking piece by piece lets the first audio out after the first piece is
synthesized, not the whole text. Pieces end at sentence ends, and at clause
marks once a piece is long enough that the pause sounds natural.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:—])\s+")


def segments(text: str, clause_chars: int = 40, max_chars: int = 200) -> list[str]:
    """Non-empty pieces of `text`, in order, that join back to its words."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        pieces.extend(_split_sentence(sentence.strip(), clause_chars, max_chars))
    return [p for p in pieces if p]


def _split_sentence(sentence: str, clause_chars: int, max_chars: int) -> list[str]:
    out: list[str] = []
    current = ""
    for clause in _CLAUSE_END.split(sentence):
        current = f"{current} {clause}".strip()
        if len(current) >= clause_chars:
            out.extend(_split_words(current, max_chars))
            current = ""
    if current:
        out.extend(_split_words(current, max_chars))
    return out


def _split_words(piece: str, max_chars: int) -> list[str]:
    """Cut an over-long piece with no punctuation at word boundaries."""
    out: list[str] = []
    current = ""
    for word in piece.split():
        if current and len(current) + 1 + len(word) > max_chars:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        out.append(current)
    return out
