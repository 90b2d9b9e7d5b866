"""Agent speech: the utterance queue, synthesis into the mixer, and play-out accounting.

Utterances are spoken one at a time, in order. The current one's text is cut
into speakable pieces (sentences, clauses); each piece is synthesized whole
into the speaker's own buffer, so its length and where each of its words
starts are known before much of it plays. The buffer holds it at the
voice's own rate and feeds the mixer's bounded speech queue as it drains,
resampling only what the mixer takes: audio synthesized ahead and then cut
costs no resampling. An utterance is PLAYED only once its last sample has
been mixed into a frame; interrupted, it keeps as `heard_text` exactly the
words whose audio was played out.

A reply that yields nothing to say is asked for once more, then fails with
a reason: a caller never gets silence reported as speech.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from parley.audio.mixer import Mixer
from parley.audio.pcm import StreamResampler
from parley.cancelling import cancel_and_wait
from parley.errors import ResourceExhausted
from parley.providers.base import TTS, ProviderError
from parley.providers.text import segments
from parley.providers.workers import urgent
from parley.sessions.states import UtteranceState
from parley.sessions.utterance import Utterance

log = logging.getLogger("parley.speech")

LOOKAHEAD_SECONDS = 2.0  # synthesized audio held beyond the mixer's queue before the next piece is synthesized
REPLY_ATTEMPTS = 2  # an empty answer from the language model is asked for once more


@dataclass
class SpeechJob:
    """An utterance and where its text comes from (a fixed text, or a reply's pieces).

    `pieces` is called once per attempt; a reply is attempted again when the
    first attempt yields nothing to say.
    """

    utterance: Utterance
    pieces: Callable[[], AsyncIterator[str]]
    is_reply: bool = False


@dataclass
class Piece:
    """One synthesized piece of an utterance, in output samples counted from the utterance's start."""

    words: list[str]
    start: int
    end: int = 0
    word_starts: list[int] = field(default_factory=list)  # first sample of each word, where the TTS told
    complete: bool = False

    def heard(self, played: int) -> list[str]:
        """The words whose audio was played out by sample `played` (a word counts once it is over)."""
        if self.complete and played >= self.end:
            return self.words
        if played <= self.start:
            return []
        if self.word_starts:
            ends = self.word_starts[1:] + ([self.end] if self.complete else [])
            return self.words[: sum(1 for end in ends if end <= played)]
        share = (played - self.start) / max(1, self.end - self.start)
        return self.words[: int(len(self.words) * share)]


def heard_text(pieces: list[Piece], played: int) -> str:
    """The text of an utterance's first `played` samples, word by word."""
    words: list[str] = []
    for piece in pieces:
        heard = piece.heard(played)
        words.extend(heard)
        if len(heard) < len(piece.words):
            break
    return " ".join(words)


@dataclass
class _Playing:
    """The current utterance's audio on its way to the mixer.

    Synthesized audio waits at the voice's own rate and is resampled to the
    mixer's rate only as the mixer takes it: audio synthesized ahead and then
    cut by an interruption costs no resampling. Positions (`synthesized`,
    piece ends) are in output samples; for audio not yet resampled they are
    what the resampler will make of it, which is exact once it is flushed.
    """

    job: SpeechJob
    resampler: StreamResampler
    pieces: list[Piece] = field(default_factory=list)
    source: deque[np.ndarray] = field(default_factory=deque)  # synthesized, at the voice's rate, not yet resampled
    source_total: int = 0  # samples the voice synthesized so far
    flushed: bool = False  # the resampler gave out its last samples
    ready: deque[np.ndarray] = field(default_factory=deque)  # resampled, not yet in the mixer
    ready_samples: int = 0
    pushed: int = 0  # samples handed to the mixer
    played: int = 0
    complete: bool = False  # everything synthesized
    ended: bool = False  # the mixer was told no more audio comes
    room: asyncio.Event = field(default_factory=asyncio.Event)  # set when the buffer drained below the look-ahead
    task: asyncio.Task[None] | None = None

    @property
    def synthesized(self) -> int:
        if self.flushed:
            return self.pushed + self.ready_samples
        return self.resampler.output_length(self.source_total)

    @property
    def buffered(self) -> int:
        """Output samples synthesized and not yet in the mixer."""
        return self.synthesized - self.pushed

    @property
    def drained(self) -> bool:
        """Everything synthesized is in the mixer."""
        return self.complete and self.flushed and not self.ready


class SpeakerCallbacks(Protocol):
    def utterance_changed(self, utterance: Utterance) -> None: ...

    async def agent_text(self, utterance: Utterance, text: str) -> str: ...

    def speech_started(self, utterance: Utterance) -> None: ...

    def speech_finished(self, utterance: Utterance) -> None: ...

    def thinking(self, active: bool) -> None: ...

    def warning(self, reason: str, message: str, utterance: Utterance) -> None: ...

    def tts_first_byte(self, utterance: Utterance, ms: float) -> None: ...

    def synthesis_finished(self, utterance: Utterance) -> None: ...


class Speaker:
    """Speaks a session's utterances in order.

    Queue policy: at most `max_queued` utterances wait; one more is
    RESOURCE_EXHAUSTED (never a silent drop). Memory: the current
    utterance's synthesized audio beyond the mixer's queue is at most one
    piece plus `LOOKAHEAD_SECONDS`.
    """

    def __init__(self, tts: TTS, mixer: Mixer, callbacks: SpeakerCallbacks, *, max_queued: int = 32) -> None:
        self._tts = tts
        self._mixer = mixer
        self._cb = callbacks
        self._max_queued = max_queued
        self._lookahead = int(LOOKAHEAD_SECONDS * mixer.sample_rate)
        self._refill_space = mixer.speech_limit_samples // 2
        self._queue: deque[SpeechJob] = deque()
        self._playing: _Playing | None = None
        self._closed = False

    # -- queue ------------------------------------------------------------------

    def enqueue(self, job: SpeechJob) -> None:
        if len(self._queue) >= self._max_queued:
            raise ResourceExhausted("max_queued_utterances", f"at most {self._max_queued} utterances may wait")
        self._queue.append(job)
        self._start_next()

    @property
    def current(self) -> Utterance | None:
        return self._playing.job.utterance if self._playing else None

    @property
    def queued(self) -> list[Utterance]:
        return [job.utterance for job in self._queue]

    @property
    def busy(self) -> bool:
        return self._playing is not None or bool(self._queue)

    # -- play-out (called by the clock after each frame) -------------------------

    def on_frame(self) -> None:
        """Account for the frame just mixed and refill the mixer from the buffer."""
        playing = self._playing
        if playing is None:
            return
        utterance = playing.job.utterance
        played = self._mixer.played_samples(utterance.id)
        if played != playing.played:
            playing.played = played
            utterance.played_ms = played * 1000 // self._mixer.sample_rate
            if utterance.mark_speaking():
                self._cb.thinking(False)
                self._cb.speech_started(utterance)
                self._cb.utterance_changed(utterance)
        if playing.drained and playing.played >= playing.pushed:
            self._finish(UtteranceState.PLAYED)
            return
        if self._mixer.speech_space_samples >= self._refill_space or (
                playing.complete and not playing.source and not playing.ended):
            self._feed(playing)  # refilled in half-queue steps, not a frame's worth after every frame

    # -- interruption -------------------------------------------------------------

    def interrupt(self, *, include_queued: bool, fade_ms: int, force: bool, reason: str) -> list[Utterance]:
        """Stop the current utterance (if it may be cut) and, if asked, drop the queued ones."""
        cut: list[Utterance] = []
        dropped: list[SpeechJob] = []
        if include_queued:
            dropped, self._queue = list(self._queue), deque()
        playing = self._playing
        if playing is not None and (playing.job.utterance.interruptible or force):
            played_with_fade = self._mixer.interrupt(fade_ms, "current") if playing.pushed else 0
            playing.played = min(playing.pushed, max(playing.played, played_with_fade))
            cut.append(playing.job.utterance)
            self._finish(UtteranceState.INTERRUPTED, reason=reason)
        for job in dropped:
            job.utterance.finish(UtteranceState.INTERRUPTED, heard_text="", reason=reason)
            self._cb.utterance_changed(job.utterance)
            cut.append(job.utterance)
        return cut

    def cancel_unheard(self, ids: set[str], reason: str) -> list[Utterance]:
        """End the utterances among `ids` that nobody has heard yet: queued, or current with nothing played."""
        cut: list[Utterance] = []
        for job in [job for job in self._queue if job.utterance.id in ids]:
            self._queue.remove(job)
            job.utterance.finish(UtteranceState.INTERRUPTED, heard_text="", reason=reason)
            self._cb.utterance_changed(job.utterance)
            cut.append(job.utterance)
        playing = self._playing
        if playing is not None and playing.job.utterance.id in ids and playing.played == 0:
            if playing.pushed:
                self._mixer.interrupt(0, "current")
            cut.append(playing.job.utterance)
            self._finish(UtteranceState.INTERRUPTED, reason=reason)
        return cut

    async def aclose(self) -> None:
        """Stop everything; utterances not final become INTERRUPTED."""
        self._closed = True
        task = self._playing.task if self._playing else None
        self.interrupt(include_queued=True, fade_ms=0, force=True, reason="SESSION_CLOSED")
        if task is not None:
            await cancel_and_wait([task])

    # -- internals ------------------------------------------------------------------

    def _start_next(self) -> None:
        while self._playing is None and self._queue and not self._closed:
            job = self._queue.popleft()
            if job.utterance.final:
                continue
            playing = _Playing(job, StreamResampler(self._tts.sample_rate, self._mixer.sample_rate))
            self._playing = playing
            playing.task = asyncio.create_task(self._produce(playing), name=f"speak-{job.utterance.id}")

    def _finish(self, state: UtteranceState, error: str = "", reason: str = "") -> None:
        playing = self._playing
        if playing is None:
            return
        self._playing = None
        self._cb.thinking(False)
        utterance = playing.job.utterance
        utterance.played_ms = playing.played * 1000 // self._mixer.sample_rate
        played = playing.played if state is not UtteranceState.PLAYED else playing.synthesized
        if utterance.finish(state, heard_text=heard_text(playing.pieces, played), error=error, reason=reason):
            self._cb.utterance_changed(utterance)
            self._cb.speech_finished(utterance)
        task = playing.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()  # stop synthesis (and the language model) of a cut utterance
        self._start_next()

    async def _produce(self, playing: _Playing) -> None:
        """Synthesize the job's pieces into the buffer; the clock's frames play and finish it."""
        job, utterance = playing.job, playing.job.utterance
        try:
            for _attempt in range(REPLY_ATTEMPTS if job.is_reply else 1):
                if job.is_reply:
                    self._cb.thinking(True)  # until its first frame plays (on_frame) or it ends (_finish)
                await self._speak_pieces(playing)
                if playing.synthesized:
                    break
            playing.complete = True
            self._feed(playing)
            self._cb.synthesis_finished(utterance)
            if not playing.synthesized:
                reason, what = ("REPLY_EMPTY", "the language model gave no answer to speak") if job.is_reply \
                    else ("NOTHING_TO_SAY", "the text has nothing the voice can speak")
                self._cb.warning(reason, what, utterance)
                self._finish(UtteranceState.FAILED, error=what, reason=reason)
            elif playing.played >= playing.synthesized:
                self._finish(UtteranceState.PLAYED)
        except asyncio.CancelledError:
            raise
        except ProviderError as exc:
            self._fail(f"{exc.stage.upper()}_FAILED", str(exc), playing)
        except Exception as exc:  # noqa: BLE001 - a broken provider fails its utterance, not the session
            log.exception("speech failed", extra={"utterance": utterance.id})
            self._fail("SPEECH_FAILED", f"{type(exc).__name__}: {exc}", playing)

    def _fail(self, reason: str, message: str, playing: _Playing) -> None:
        self._cb.warning(reason, message, playing.job.utterance)
        if playing.pushed:
            played = self._mixer.interrupt(20, "current")
            playing.played = min(playing.pushed, max(playing.played, played))
        self._finish(UtteranceState.FAILED, error=message, reason=reason)

    async def _speak_pieces(self, playing: _Playing) -> None:
        job, utterance = playing.job, playing.job.utterance
        async for text in job.pieces():
            text = await self._cb.agent_text(utterance, text)
            if not text.strip():
                continue
            if job.is_reply:
                utterance.text = f"{utterance.text} {text}".strip()
            for segment in segments(text):
                while playing.buffered > self._lookahead:
                    playing.room.clear()
                    await playing.room.wait()
                # the utterance's first audio, which the caller waits for, goes ahead of other sessions' look-ahead
                with nullcontext() if playing.pieces else urgent():
                    await self._synthesize(segment, playing)

    async def _synthesize(self, text: str, playing: _Playing) -> None:
        """One piece, whole, into the buffer, with where its words start."""
        piece = Piece(text.split(), start=playing.synthesized)
        playing.pieces.append(piece)
        ratio = self._mixer.sample_rate / self._tts.sample_rate
        started = time.monotonic()
        source_samples = 0
        first = True
        async for chunk in self._tts.synthesize_timed(text):
            if first:
                first = False
                self._cb.tts_first_byte(playing.job.utterance, (time.monotonic() - started) * 1000)
            for word, sample in chunk.word_starts:
                if word == len(piece.word_starts):
                    piece.word_starts.append(piece.start + round((source_samples + sample) * ratio))
            source_samples += len(chunk.pcm)
            self._buffer(chunk.pcm, playing, piece)
            await asyncio.sleep(0)  # a voice with its audio ready at once must not hold every other session
        piece.complete = True

    def _buffer(self, pcm: np.ndarray, playing: _Playing, piece: Piece) -> None:
        if len(pcm):
            playing.source.append(pcm)
            playing.source_total += len(pcm)
        piece.end = playing.synthesized
        if self._mixer.speech_space_samples >= self._refill_space:  # else the next frames refill the mixer
            self._feed(playing)

    def _feed(self, playing: _Playing) -> None:
        """Move buffered audio into the mixer's speech queue, as much as fits."""
        space = self._mixer.speech_space_samples
        if space > playing.ready_samples:
            self._resample(playing, space - playing.ready_samples)
        for head in _take(playing.ready, space):
            self._mixer.push_speech(head, playing.job.utterance.id)
            playing.ready_samples -= len(head)
            playing.pushed += len(head)
        if playing.drained and playing.pushed and not playing.ended:
            playing.ended = True
            self._mixer.end_speech(playing.job.utterance.id)  # its end is the end, not audio running dry
        if playing.buffered <= self._lookahead:
            playing.room.set()

    @staticmethod
    def _resample(playing: _Playing, wanted: int) -> None:
        """Resample about `wanted` output samples' worth of the waiting audio (the rest, once all is synthesized)."""
        resampler = playing.resampler
        taken = _take(playing.source, -(-wanted * resampler.from_rate // resampler.to_rate))
        last = playing.complete and not playing.source and not playing.flushed
        if not taken and not last:
            return
        out = resampler.process(np.concatenate(taken) if taken else np.zeros(0, np.int16), last=last)
        playing.flushed = last
        if len(out):
            playing.ready.append(out)
            playing.ready_samples += len(out)


def _take(chunks: deque[np.ndarray], count: int) -> list[np.ndarray]:
    """Up to `count` samples from the front of `chunks`, splitting the chunk where they end."""
    taken: list[np.ndarray] = []
    while chunks and count > 0:
        head = chunks[0]
        if len(head) > count:
            chunks[0], head = head[count:], head[:count]
        else:
            chunks.popleft()
        taken.append(head)
        count -= len(head)
    return taken
