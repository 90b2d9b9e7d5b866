"""Many sessions in one process: opening and closing them leaves nothing behind."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import numpy as np

from parley.audio.pcm import PcmLike, StreamResampler
from parley.providers.base import SpeechChunk
from parley.providers.tts import tone
from parley.providers.tts.tone import ToneTTS
from parley.providers.workers import Workers
from parley.sessions import speech
from parley.sessions.config import AudioFormat, SessionConfig
from parley.sessions.limits import RegistryLimits
from parley.sessions.registry import SessionRegistry
from parley.sessions.states import UtteranceState
from parley.sessions.stream import StreamSpec
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_CHOICES, STAND_IN_PROVIDERS
from tests.helpers import eventually


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


async def cycle(stub, count: int) -> None:
    config = session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS)
    names = [s.session.name for s in await asyncio.gather(
        *(stub.Start(pb.StartRequest(config=config)) for _ in range(count)))]
    said = await asyncio.gather(*(stub.Say(pb.SayRequest(session=n, text="hi")) for n in names))
    await asyncio.gather(*(stub.WaitUtterance(pb.WaitUtteranceRequest(session=n, utterance_id=s.utterance.id))
                           for n, s in zip(names, said, strict=True)))
    await asyncio.gather(*(stub.PlayBackgroundAudio(pb.PlayBackgroundAudioRequest(session=n)) for n in names[:20]))
    await asyncio.gather(*(stub.Close(pb.CloseRequest(session=n)) for n in names))


async def test_200_sessions_open_and_close_leave_no_tasks_or_memory(server, stub) -> None:
    await cycle(stub, 20)  # warm caches, pools and allocators
    gc.collect()
    tasks_before = len(asyncio.all_tasks())
    rss_before = rss_mb()

    await cycle(stub, 200)
    assert server.registry.active_count == 0
    gc.collect()

    await eventually(lambda: len(asyncio.all_tasks()) <= tasks_before,
                     what=f"tasks back to {tasks_before}: {[t.get_name() for t in asyncio.all_tasks()]}")
    growth = rss_mb() - rss_before
    assert growth < 25, f"RSS grew {growth:.1f} MB over 200 sessions"


async def test_sessions_cost_no_task_of_their_own_unless_they_speak() -> None:
    """The structure that keeps a session cheap: one frame clock for all, no task per session or per stream."""
    workers = Workers(2)
    registry = SessionRegistry(RegistryLimits(allow_stand_in_providers=True), workers=workers)
    config = SessionConfig(providers=STAND_IN_CHOICES)
    await registry.start(config)  # the shared frame clock's task exists from the first session on
    baseline = len(asyncio.all_tasks())
    sessions = [await registry.start(config) for _ in range(50)]
    assert len(asyncio.all_tasks()) == baseline  # an idle session: no task, not on the clock
    assert len(registry.frame_clock) == 0

    silence = bytes(640)
    streams = [s.attach_stream(StreamSpec(16000, 1, AudioFormat(24000)), take_over=False) for s in sessions]
    for _ in range(25):  # half a second of a silent caller on every stream
        for session, stream in zip(sessions, streams, strict=True):
            session.push_audio(stream, silence)
        await asyncio.sleep(0.02)
    assert len(asyncio.all_tasks()) == baseline  # a listening session: on the clock, still no task
    assert len(registry.frame_clock) == 50

    said = [s.say("one short sentence") for s in sessions]
    assert len(asyncio.all_tasks()) == baseline + 50  # a speaking session: one task, its speech
    await asyncio.gather(*(u.done for u in said))
    await eventually(lambda: len(asyncio.all_tasks()) == baseline, what="the speech tasks gone")

    for session, stream in zip(sessions, streams, strict=True):
        session.detach_stream(stream)
    await eventually(lambda: len(registry.frame_clock) == 0, what="every session off the clock")
    await registry.shutdown()
    workers.close()


async def test_speech_cut_early_was_never_resampled_beyond_what_the_mixer_took(monkeypatch) -> None:
    """Synthesized audio waits at the voice's rate and is resampled only as the mixer takes it.

    The tone voice makes a whole piece at once, at 16 kHz for a 24 kHz session,
    far ahead of play-out; cut after a moment, almost none of it was resampled.
    """
    given: list[int] = []

    class CountingResampler(StreamResampler):  # the real resampler, counting the samples it is given
        def process(self, pcm: PcmLike, last: bool = False) -> np.ndarray:
            given.append(len(pcm))
            return super().process(pcm, last)

    monkeypatch.setattr(speech, "StreamResampler", CountingResampler)
    workers = Workers(2)
    registry = SessionRegistry(RegistryLimits(allow_stand_in_providers=True), workers=workers)
    session = await registry.start(SessionConfig(
        providers=STAND_IN_CHOICES,
        output_format=AudioFormat(24000)))
    text = " ".join(["word"] * 60)  # one piece: 60 x 4 characters x 60 ms of tone, 14 s, plus the spaces
    said = session.say(text)
    await eventually(lambda: said.played_ms >= 300, what="the sentence playing")
    [cut] = session.interrupt()
    assert cut is said and said.state is UtteranceState.INTERRUPTED
    assert text.startswith(said.heard_text)

    # at most what played, plus the mixer's speech queue (1 s) and the filter's delay
    resampled_seconds, played_seconds = sum(given) / 16000, said.played_ms / 1000
    assert resampled_seconds < played_seconds + 1.5, (
        f"{resampled_seconds:.1f} s of a {60 * 4 * 0.06:.0f} s sentence resampled, {played_seconds:.1f} s played")
    await registry.shutdown()
    workers.close()


async def test_a_voice_with_its_audio_ready_at_once_lets_every_session_start_speaking(monkeypatch) -> None:
    """Speech that starts in many sessions at once starts in all of them before any runs ahead.

    The tone voice hands over its audio without ever waiting (as a cached or
    very fast engine would), and each session synthesizes seconds ahead of
    play-out. Were synthesis not to give way between chunks, the first
    session would make its whole look-ahead before the second made anything,
    and every session's first frame would wait for all of them.
    """
    pulled: list[int] = []  # which session's voice handed over each chunk, in order

    class RecordingTone(ToneTTS):  # the real stand-in voice, recording the order its chunks are taken in
        async def synthesize_timed(self, text: str) -> AsyncIterator[SpeechChunk]:
            async for chunk in super().synthesize_timed(text):
                pulled.append(id(self))
                yield chunk

    monkeypatch.setattr(tone, "ToneTTS", RecordingTone)
    workers = Workers(2)
    registry = SessionRegistry(RegistryLimits(allow_stand_in_providers=True), workers=workers)
    config = SessionConfig(providers=STAND_IN_CHOICES)
    sessions = [await registry.start(config) for _ in range(20)]
    said = [s.say("Thank you for calling. Your order has shipped and should arrive on Thursday.")
            for s in sessions]
    await eventually(lambda: all(u.played_ms > 0 for u in said), what="every session speaking")

    voices = set(pulled)
    assert len(voices) == len(sessions)
    first_round = pulled[: len(voices)]
    assert set(first_round) == voices, (
        f"{len(set(first_round))} of {len(voices)} sessions had their first audio before one took a second chunk")
    await registry.shutdown()
    workers.close()
