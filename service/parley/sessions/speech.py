"""Agent speech: the utterance queue, synthesis into the mixer, and play-out accounting.

Utterances are spoken one at a time. The current one's text pieces are
synthesized and pushed into the mixer's speech queue as they come. After
each frame the mixer tells how many of the utterance's samples went out; an
utterance is PLAYED only once its last sample has been mixed into a frame.
The next utterance is synthesized only after that, so the mixer's speech
queue only ever holds the current utterance and an interruption drops
exactly it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from parley.audio.mixer import Mixer
from parley.audio.pcm import StreamResampler
from parley.errors import ResourceExhausted
from parley.providers.base import TTS, ProviderError
from parley.sessions.states import UtteranceState
from parley.sessions.utterance import Utterance

log = logging.getLogger("parley.speech")


@dataclass
class SpeechJob:
    """An utterance and where its text comes from (a fixed text, or a reply's pieces)."""

    utterance: Utterance
    pieces: Callable[[], AsyncIterator[str]]
    is_reply: bool = False


@dataclass
class _Piece:
    text: str
    start: int
    end: int


@dataclass
class _Playing:
    job: SpeechJob
    pieces: list[_Piece] = field(default_factory=list)
    pushed: int = 0
    played: int = 0
    complete: bool = False  # everything synthesized and pushed


class SpeakerCallbacks(Protocol):
    def utterance_changed(self, utterance: Utterance) -> None: ...

    async def agent_text(self, utterance: Utterance, text: str) -> str: ...

    def speech_started(self, utterance: Utterance) -> None: ...

    def speech_finished(self, utterance: Utterance) -> None: ...

    def thinking(self, active: bool) -> None: ...

    def warning(self, reason: str, message: str, utterance: Utterance) -> None: ...

    def tts_first_byte(self, utterance: Utterance, ms: float) -> None: ...

    def synthesis_finished(self, utterance: Utterance) -> None: ...


def heard_text(pieces: list[_Piece], played: int) -> str:
    """The text of the samples played: whole pieces, then the share of words of the one cut."""
    words: list[str] = []
    for piece in pieces:
        if played >= piece.end:
            words.append(piece.text)
        elif played > piece.start:
            share = (played - piece.start) / max(1, piece.end - piece.start)
            piece_words = piece.text.split()
            words.extend(piece_words[: int(len(piece_words) * share)])
            break
        else:
            break
    return " ".join(w for w in words if w)


class Speaker:
    """Speaks a session's utterances in order.

    Queue policy: at most `max_queued` utterances wait; one more is
    RESOURCE_EXHAUSTED (never a silent drop).
    """

    def __init__(
        self, tts: TTS, mixer: Mixer, wait_frame: Callable[[], Awaitable[None]], callbacks: SpeakerCallbacks, *,
        max_queued: int = 32,
    ) -> None:
        self._tts = tts
        self._mixer = mixer
        self._wait_frame = wait_frame
        self._cb = callbacks
        self._max_queued = max_queued
        self._queue: deque[SpeechJob] = deque()
        self._wakeup = asyncio.Event()
        self._playing: _Playing | None = None
        self._job_task: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="speaker")

    # -- queue ------------------------------------------------------------------

    def enqueue(self, job: SpeechJob) -> None:
        if len(self._queue) >= self._max_queued:
            raise ResourceExhausted("max_queued_utterances", f"at most {self._max_queued} utterances may wait")
        self._queue.append(job)
        self._wakeup.set()

    @property
    def current(self) -> Utterance | None:
        return self._playing.job.utterance if self._playing else None

    @property
    def queued(self) -> list[Utterance]:
        return [job.utterance for job in self._queue]

    @property
    def busy(self) -> bool:
        return self._playing is not None or bool(self._queue)

    # -- play-out accounting (called by the pacer after each frame) ------------------

    def on_frame(self) -> None:
        playing = self._playing
        if playing is None:
            return
        utterance = playing.job.utterance
        played = self._mixer.played_samples(utterance.id)
        if played == playing.played:
            return
        playing.played = played
        utterance.played_ms = playing.played * 1000 // self._mixer.sample_rate
        if utterance.mark_speaking():
            self._cb.thinking(False)
            self._cb.speech_started(utterance)
            self._cb.utterance_changed(utterance)
        if playing.complete and playing.played >= playing.pushed:
            self._finish(UtteranceState.PLAYED)

    # -- interruption -------------------------------------------------------------

    def interrupt(self, *, include_queued: bool, fade_ms: int, force: bool) -> list[Utterance]:
        """Stop the current utterance (if it may be cut) and, if asked, drop the queued ones."""
        cut: list[Utterance] = []
        playing = self._playing
        if playing is not None and (playing.job.utterance.interruptible or force):
            played_with_fade = self._mixer.interrupt(fade_ms, "current") if playing.pushed else 0
            playing.played = min(playing.pushed, max(playing.played, played_with_fade))
            cut.append(playing.job.utterance)
            self._finish(UtteranceState.INTERRUPTED)
        if include_queued:
            while self._queue:
                job = self._queue.popleft()
                job.utterance.finish(UtteranceState.INTERRUPTED, heard_text="")
                self._cb.utterance_changed(job.utterance)
                cut.append(job.utterance)
        return cut

    async def aclose(self) -> None:
        """Stop everything; utterances not final become INTERRUPTED."""
        self.interrupt(include_queued=True, fade_ms=0, force=True)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    # -- internals ------------------------------------------------------------------

    def _finish(self, state: UtteranceState, error: str = "") -> None:
        playing = self._playing
        if playing is None:
            return
        self._playing = None
        self._cb.thinking(False)
        utterance = playing.job.utterance
        utterance.played_ms = playing.played * 1000 // self._mixer.sample_rate
        text = heard_text(playing.pieces, playing.played if state is not UtteranceState.PLAYED else playing.pushed)
        if utterance.finish(state, heard_text=text, error=error):
            self._cb.utterance_changed(utterance)
            self._cb.speech_finished(utterance)
        task = self._job_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()  # stop synthesis (and the language model) of a cut utterance
        self._finished.set()

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            job = self._queue.popleft()
            if job.utterance.final:
                continue
            self._playing = _Playing(job)
            self._finished.clear()
            self._job_task = asyncio.create_task(self._produce(self._playing), name=f"speak-{job.utterance.id}")
            await self._finished.wait()
            await asyncio.gather(self._job_task, return_exceptions=True)

    async def _produce(self, playing: _Playing) -> None:
        """Synthesize the job's pieces into the mixer; the pacer's frames finish it."""
        job, utterance = playing.job, playing.job.utterance
        try:
            resampler = StreamResampler(self._tts.sample_rate, self._mixer.sample_rate)
            if job.is_reply:
                self._cb.thinking(True)  # until its first frame plays (on_frame) or it ends (_finish)
            async for text in job.pieces():
                text = await self._cb.agent_text(utterance, text)
                if not text.strip():
                    continue
                if job.is_reply:
                    utterance.text = f"{utterance.text} {text}".strip()
                piece = _Piece(text, playing.pushed, playing.pushed)
                playing.pieces.append(piece)
                await self._synthesize(text, resampler, playing, piece)
            tail = resampler.process(np.zeros(0, dtype=np.int16), last=True)
            await self._push_paced(tail, playing, playing.pieces[-1] if playing.pieces else None)
            playing.complete = True
            self._cb.synthesis_finished(utterance)
            if playing.pushed == 0 or playing.played >= playing.pushed:
                self._finish(UtteranceState.PLAYED)
        except asyncio.CancelledError:
            raise
        except ProviderError as exc:
            self._cb.warning(f"{exc.stage.upper()}_FAILED", str(exc), utterance)
            self._mixer.interrupt(20, "current")
            self._finish(UtteranceState.FAILED, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a broken provider fails its utterance, not the session
            log.exception("speech failed", extra={"utterance": utterance.id})
            self._cb.warning("SPEECH_FAILED", f"{type(exc).__name__}: {exc}", utterance)
            self._mixer.interrupt(20, "current")
            self._finish(UtteranceState.FAILED, error=f"{type(exc).__name__}: {exc}")

    async def _synthesize(self, text: str, resampler: StreamResampler, playing: _Playing, piece: _Piece) -> None:
        started = time.monotonic()
        first = True
        async for chunk in self._tts.synthesize(text):
            if first:
                first = False
                self._cb.tts_first_byte(playing.job.utterance, (time.monotonic() - started) * 1000)
            await self._push_paced(resampler.process(chunk), playing, piece)

    async def _push_paced(self, pcm: np.ndarray, playing: _Playing, piece: _Piece | None) -> None:
        """Push in slices, waiting for room in the mixer's bounded speech queue (back-pressure on TTS)."""
        step = self._mixer.sample_rate // 2
        for start in range(0, len(pcm), step):
            piece_pcm = pcm[start:start + step]
            while self._mixer.speech_space_samples < len(piece_pcm):
                await self._wait_frame()
            self._push(piece_pcm, playing, piece)

    def _push(self, pcm: np.ndarray, playing: _Playing, piece: _Piece | None) -> None:
        self._mixer.push_speech(pcm, playing.job.utterance.id)
        playing.pushed += len(pcm)
        if piece is not None:
            piece.end = playing.pushed
