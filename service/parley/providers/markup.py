"""Markup in a language model's text, taken out before speech.

Models write for screens: Markdown emphasis, headings, bullets, links and
code, HTML tags, entities, and sometimes the prompt format's own markers
(`<<SYS>>`, `[INST]`, `<|eot_id|>`). A TTS engine reads those aloud
("asterisk asterisk", "less than e m greater than"). `speakable` keeps the
words and drops the markup, one piece of a reply at a time: a pair split
across two pieces loses its halves one by one, so nothing needs the whole
text.
"""

from __future__ import annotations

import html
import re

# Prompt-format markers: Llama 2 (<<SYS>>, [INST], <s>), ChatML and Llama 3 (<|im_start|>, <|eot_id|>),
# Gemma (<start_of_turn>, <end_of_turn>).
_SPECIAL_TOKENS = re.compile(r"<</?SYS>>|\[/?INST\]|</?s>|<\|[^|<>]{1,40}\|>|<(?:start|end)_of_turn>")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_CODE_FENCE = re.compile(r"^\s*(```|~~~)[^\n]*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)
_HEADING = re.compile(r"^#{1,6}\s+", re.MULTILINE)
_QUOTE = re.compile(r"^\s*>\s?", re.MULTILINE)
_BULLET = re.compile(r"^\s*[-*+•]\s+", re.MULTILINE)
_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.MULTILINE)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|~~)(?=\S)(.+?)(?<=\S)\1")
_STRAY_STARS = re.compile(r"(?<!\d\s)\*+|\*+(?!\s\d)")  # not in "2 * 3"
_STRAY_UNDERSCORES = re.compile(r"(?<!\w)_+|_+(?!\w)")
_BACKTICKS = re.compile(r"`+")
_PIPES = re.compile(r"\s*\|\s*")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:!?])")
_SPACES = re.compile(r"\s+")


def speakable(text: str) -> str:
    """`text` without markup, on one line; "" when nothing speakable is left."""
    text = _SPECIAL_TOKENS.sub(" ", text)
    text = _HTML_COMMENT.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    text = _CODE_FENCE.sub(" ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _TABLE_RULE.sub(" ", text)
    text = _RULE.sub(" ", text)
    text = _INDENT.sub("", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub("", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _STRAY_STARS.sub(" ", text)
    text = _STRAY_UNDERSCORES.sub(" ", text)
    text = _BACKTICKS.sub("", text)
    text = _PIPES.sub(" ", text.strip().strip("|"))
    text = html.unescape(text)
    text = _SPACES.sub(" ", text).strip()
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)
