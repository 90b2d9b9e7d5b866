"""End-of-turn detection: VAD endpointing, shortened when the words look finished.

After the VAD reports the end of speech, the engine waits endpoint_delay()
seconds for more speech before it ends the user's turn. A transcript that
ends a sentence (final punctuation, or a complete question) waits the
minimum; one that trails off on a word that needs a continuation ("and",
"the", "um") waits the maximum; anything else waits in between.
"""

from __future__ import annotations

import re
from typing import Any

from parley.providers.base import TurnDetector
from parley.providers.options import Opt
from parley.providers.workers import Workers

OPTIONS = {
    "unsure_fraction": Opt(
        float, 0.5, min=0.0, max=1.0, help="where between min and max delay an undecided transcript waits"
    ),
}

_CONTINUATIONS = frozenset(
    """a an the and or but so because if then than that which who whose whom to of in on at
    for from with by about into my your his her their our its is are was were be been am
    um uh er erm hmm like well also very really just i we you they he she it it's i'm
    can could would should will shall may might must do does did don't not""".split()
)
_QUESTION_OPENERS = frozenset(
    """what when where who whom whose why how which is are was were do does did can could
    would will should shall may might have has had am""".split()
)
_WORD = re.compile(r"[a-z']+")


def completeness(transcript: str) -> float | None:
    """1.0 for a finished sentence, 0.0 for one that trails off, None if unclear."""
    text = transcript.strip()
    if not text:
        return 0.0
    if text[-1] in ".!?":
        return 1.0
    if text[-1] in ",;:-—" or text.endswith("..."):
        return 0.0
    words = _WORD.findall(text.lower())
    if not words:
        return None
    if words[-1] in _CONTINUATIONS:
        return 0.0
    if len(words) >= 3 and words[0] in _QUESTION_OPENERS:
        return 1.0
    return None


class VADTurnDetector(TurnDetector):
    name = "vad"

    def __init__(self, options: dict[str, Any], *, voice: str, workers: Workers) -> None:
        self._unsure = options["unsure_fraction"]

    def endpoint_delay(self, transcript: str, min_delay: float, max_delay: float) -> float:
        score = completeness(transcript)
        if score is None:
            score = 1.0 - self._unsure
        return max_delay - score * (max_delay - min_delay)
