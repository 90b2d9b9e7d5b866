"""Provider interfaces: one small async contract per pipeline stage.

Nothing here knows about gRPC or protobuf. Providers raise ProviderError for
any failure of their engine or endpoint; the session engine turns it into an
event and a failed utterance, and the session lives on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

import numpy as np

from parley.chat import ChatMessage, ToolCall, ToolSpec

ErrorKind = Literal["failed", "timeout", "malformed"]


class ProviderError(Exception):
    """A provider could not do its job.

    kind: "failed" (exception, refused request, HTTP error), "timeout" (no
    answer in time), "malformed" (an answer that cannot be parsed).
    """

    def __init__(self, kind: ErrorKind, stage: str, provider: str, message: str) -> None:
        super().__init__(f"{stage}/{provider} {kind}: {message}")
        self.kind: ErrorKind = kind
        self.stage = stage
        self.provider = provider
        self.message = message


# --- text to speech ---------------------------------------------------------


@dataclass(frozen=True)
class SpeechChunk:
    """Synthesized audio, and the words of the text that begin in it (where the engine tells).

    `word_starts` holds (word index in `text.split()`, first sample of the
    word within `pcm`) pairs; engines that do not know word timings leave it
    empty, and the engine then places words in proportion to the audio.
    """

    pcm: np.ndarray
    word_starts: tuple[tuple[int, int], ...] = ()


class TTS(ABC):
    """Text to speech. Audio is mono int16 at `sample_rate`."""

    name: str
    sample_rate: int

    @abstractmethod
    def synthesize_timed(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Yield chunks as they are synthesized (an async generator).

        The first chunk comes before the whole text is synthesized; closing
        the generator stops synthesis.
        """

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        """The audio of synthesize_timed() alone."""
        async for chunk in self.synthesize_timed(text):
            yield chunk.pcm

    async def warm_up(self) -> None:  # noqa: B027 - optional: a no-op unless a provider has models to load
        """Load models now rather than on first use (e.g. at server start); optional."""


# --- speech to text ---------------------------------------------------------


@dataclass(frozen=True)
class Word:
    word: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Transcript:
    text: str
    is_final: bool
    words: list[Word] = field(default_factory=list)


class STTStream(ABC):
    """One caller's speech, utterance after utterance. Calls on one stream must not overlap."""

    @abstractmethod
    async def push(self, pcm: np.ndarray, *, interim: bool = True) -> Transcript | None:
        """Feed int16 mono audio at the STT's rate; an interim result if one is ready.

        `interim=False`: the final is asked for right after this audio, so
        spend nothing on an interim result now.
        """

    @abstractmethod
    async def finish(self) -> Transcript:
        """Final transcript of the audio pushed since the last finish; the stream is then reset."""

    @abstractmethod
    async def aclose(self) -> None:  # noqa: B027 - optional: a no-op unless a provider holds resources
        """Release the stream's resources; idempotent."""


class STT(ABC):
    """Speech to text. Input is mono int16 at `sample_rate` (16 kHz)."""

    name: str
    sample_rate: int

    @abstractmethod
    def stream(self) -> STTStream: ...

    async def warm_up(self) -> None:  # noqa: B027 - optional: a no-op unless a provider has models to load
        """Load models now rather than on first use (e.g. at server start); optional."""


# --- voice activity detection -----------------------------------------------


class VADEventType(Enum):
    SPEECH_START = 1
    SPEECH_END = 2


@dataclass(frozen=True)
class VADEvent:
    type: VADEventType
    time_ms: int
    """Position of the edge in the stream's input audio, hangover removed."""


class VADStream(ABC):
    speaking: bool

    @property
    def quiet_ms(self) -> int:
        """While speaking: how long the voice has been quiet, before the end is confirmed (0 if unknown)."""
        return 0

    @abstractmethod
    def process(self, pcm: np.ndarray) -> list[VADEvent]:
        """Feed int16 mono audio; cheap and synchronous, called on the event loop."""


class VAD(ABC):
    name: str
    sample_rate: int

    @abstractmethod
    def stream(self) -> VADStream: ...


# --- turn detection ---------------------------------------------------------


class TurnDetector(ABC):
    name: str

    @abstractmethod
    def endpoint_delay(self, transcript: str, min_delay: float, max_delay: float) -> float:
        """Seconds to wait after speech ends before the user's turn ends."""


# --- language model ---------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


LLMChunk = TextDelta | ToolCall | Usage


class LLM(ABC):
    name: str
    model: str

    @abstractmethod
    def chat(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> AsyncIterator[LLMChunk]:
        """Stream the answer (an async generator): TextDelta pieces, complete
        ToolCall objects once parsed, and Usage last (zeros when the engine
        does not count). Closing the generator or cancelling its consumer
        stops the generation."""

    async def aclose(self) -> None:  # noqa: B027 - optional: a no-op unless a provider holds resources
        """Release connections or other per-session resources; idempotent."""

    async def warm_up(self) -> None:  # noqa: B027 - optional: a no-op unless a provider has models to load
        """Load models now rather than on first use (e.g. at server start); optional."""
