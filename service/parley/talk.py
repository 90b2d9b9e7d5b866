"""`parley talk`: a caller from a file.

Streams a WAV (or any file libsndfile reads) to a session in real time as
the caller's voice, prints the session's events as they arrive, shows a
progress line on a terminal, records the agent's audio, waits for the
agent's reply to play out, and writes the recording to a WAV.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

import grpc
import numpy as np
import soundfile

from parley.audio.pcm import float_to_int16
from parley.fleet.routing import session_metadata
from parley.readable import line, short
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2, session_pb2

CHUNK_MS = 20
FINAL_STATES = (session_pb2.UTTERANCE_STATE_PLAYED, session_pb2.UTTERANCE_STATE_INTERRUPTED,
                session_pb2.UTTERANCE_STATE_FAILED)


@dataclass(frozen=True)
class TalkOptions:
    address: str
    wav: str
    out: str
    session: str = ""  # talk to this session instead of starting one (left open afterwards)
    instructions: str = "You are a helpful voice assistant. Answer in one sentence."
    rate: int = 0  # output sample rate; 0 = the session's
    timeout: float = 60.0  # seconds to wait for the reply after the file was sent
    token: str = ""  # bearer token, when the server has authentication on

    def metadata(self, session: str = "") -> tuple[tuple[str, str], ...]:
        """The bearer token, and the session's name for a proxy to route by (parley.fleet.routing)."""
        auth = (("authorization", f"Bearer {self.token}"),) if self.token else ()
        return auth + session_metadata(session)


@dataclass
class Progress:
    """What the conversation looks like so far; drawn as one line on a terminal."""

    input_seconds: float
    out_rate: int
    sent_seconds: float = 0.0
    received_samples: int = 0
    agent: str = "idle"
    user: str = "idle"
    utterances: dict[str, int] = field(default_factory=dict)  # id -> state
    reply_states: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (f"sent {self.sent_seconds:4.1f}/{self.input_seconds:.1f} s | agent audio "
                f"{self.received_samples / self.out_rate:5.1f} s | agent {self.agent:<9} | user {self.user:<9}")

    def replied(self) -> bool:
        """A reply reached a final state and nothing else is pending."""
        return (any(s in FINAL_STATES for s in self.reply_states.values())
                and all(s in FINAL_STATES for s in self.utterances.values()))


class Display:
    """Event lines on stdout; the progress line on stderr, only when it is a terminal."""

    def __init__(self, progress: Progress, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.progress = progress
        self.out = out
        self.err = err
        self.live = err.isatty()

    def event(self, text: str) -> None:
        if self.live:
            self.err.write("\r\033[K")
            self.err.flush()
        print(text, file=self.out, flush=True)
        self.refresh()

    def refresh(self) -> None:
        if self.live:
            self.err.write("\r\033[K" + self.progress.line())
            self.err.flush()

    def done(self) -> None:
        if self.live:
            self.err.write("\r\033[K")
            self.err.flush()


def read_input(path: str) -> tuple[np.ndarray, int]:
    """int16 samples (frames x channels) and the rate; only mono and stereo are accepted."""
    try:
        decoded, rate = soundfile.read(path, dtype="float64", always_2d=True)  # any sample format, converted
    except soundfile.LibsndfileError as exc:
        raise ValueError(f"cannot read {path}: {exc.error_string}") from exc
    if decoded.shape[1] > 2:
        raise ValueError(f"{path}: {decoded.shape[1]} channels; use a mono or stereo file")
    return float_to_int16(decoded), rate


async def talk(options: TalkOptions, display_out: TextIO = sys.stdout, display_err: TextIO = sys.stderr) -> int:
    """Run one conversation; 0 when a reply played, 1 when it did not (or failed).

    A session it started is closed on every way out: done, an error, Ctrl-C (cancellation).
    """
    pcm, rate = read_input(options.wav)
    async with grpc.aio.insecure_channel(options.address) as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        if options.session:
            session = (await stub.Get(pb.GetRequest(session=options.session),
                                      metadata=options.metadata(options.session))).session
            return await _converse(stub, session, pcm, rate, options, display_out, display_err)
        config = session_pb2.SessionConfig(instructions=options.instructions)
        session = (await stub.Start(pb.StartRequest(config=config), metadata=options.metadata())).session
        reason = "talk failed"
        try:
            played = await _converse(stub, session, pcm, rate, options, display_out, display_err)
            reason = "talk done"
            return played
        except asyncio.CancelledError:
            reason = "talk interrupted"
            raise
        finally:
            if reason != "talk done":  # the conversation closes it itself when all went well
                await _close_quietly(stub, session.name, reason, options)


async def _close_quietly(stub: pb_grpc.AgentSessionServiceStub, name: str, reason: str, options: TalkOptions) -> None:
    """Close on the way out of an error: bounded, and never hiding the error that brought us here."""
    try:
        await stub.Close(pb.CloseRequest(session=name, reason=reason), metadata=options.metadata(name), timeout=5)
    except grpc.aio.AioRpcError as exc:
        print(f"could not close {name}: {exc.code().name} {exc.details()}", file=sys.stderr)


async def _converse(stub: pb_grpc.AgentSessionServiceStub, session: session_pb2.Session, pcm: np.ndarray, rate: int,
                    options: TalkOptions, display_out: TextIO, display_err: TextIO) -> int:
    channels = pcm.shape[1]
    out_rate = options.rate or session.config.output_format.sample_rate_hz
    progress = Progress(len(pcm) / rate, out_rate)
    display = Display(progress, display_out, display_err)
    display.event(f"session {session.name} (you: {rate} Hz x{channels}, agent: {out_rate} Hz)")

    call = stub.StreamAudio(metadata=options.metadata(session.name))
    await call.write(pb.StreamAudioRequest(config=pb.StreamConfig(
        session=session.name,
        input_format=audio_pb2.AudioFormat(sample_rate_hz=rate, channels=channels),
        output_format=audio_pb2.AudioFormat(sample_rate_hz=out_rate),
    )))
    recorded: list[bytes] = []
    changed = asyncio.Event()
    answered = asyncio.Event()  # the stream's first message: it was admitted

    async def receive() -> None:
        async for response in call:
            answered.set()
            if response.WhichOneof("message") == "audio":
                recorded.append(response.audio.pcm)
                progress.received_samples += len(response.audio.pcm) // 2
                display.refresh()
                continue
            event = response.event
            kind = event.WhichOneof("event")
            if kind == "agent_state_changed":
                progress.agent = short(session_pb2.AgentState, event.agent_state_changed.new_state)
            elif kind == "user_state_changed":
                progress.user = short(session_pb2.UserState, event.user_state_changed.new_state)
            elif kind == "utterance_updated":
                u = event.utterance_updated.utterance
                progress.utterances[u.id] = u.state
                if u.source == session_pb2.UTTERANCE_SOURCE_REPLY:
                    progress.reply_states[u.id] = u.state
            display.event(line(event))
            changed.set()

    async def send() -> None:
        """The file in 20 ms chunks at real-time pace, then silence: the line stays open.

        Only once the stream answered: a refused stream then ends with its own status (a write
        racing it would turn that status into INTERNAL in grpcio's asyncio client).
        """
        await answered.wait()
        step = rate * CHUNK_MS // 1000
        silence = np.zeros((step, channels), dtype="<i2").tobytes()
        start = time.monotonic()
        n = 0
        while True:
            chunk = pcm[n * step:(n + 1) * step]
            await call.write(pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(
                pcm=chunk.astype("<i2").tobytes() if len(chunk) else silence)))
            n += 1
            progress.sent_seconds = min(n * step, len(pcm)) / rate
            await asyncio.sleep(max(0.0, start + n * CHUNK_MS / 1000 - time.monotonic()))

    receiver = asyncio.create_task(receive())
    sender = asyncio.create_task(send())
    deadline = time.monotonic() + progress.input_seconds + options.timeout
    try:
        while not (progress.sent_seconds >= progress.input_seconds and progress.replied()):
            if receiver.done():
                receiver.result()  # raises the stream's error, if any
                break
            changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:  # re-checked at least twice a second: the file may have been sent meanwhile
                # asyncio.timeout, not wait_for: on Python 3.11, a Ctrl-C (the task cancelled) in the loop step
                # an event set `changed` was dropped by wait_for, and the talk went on to the end.
                async with asyncio.timeout(min(remaining, 0.5)):
                    await changed.wait()
            except TimeoutError:
                pass
        if options.session:
            call.cancel()  # leave the session open for its owner
        else:
            closed = (await stub.Close(pb.CloseRequest(session=session.name, reason="talk done"),
                                        metadata=options.metadata(session.name))).session
            display.event(f"closed {closed.name}: {closed.close_reason!r}")
        await asyncio.gather(receiver, return_exceptions=True)
    finally:
        sender.cancel()
        receiver.cancel()
        call.cancel()
        await asyncio.gather(sender, receiver, return_exceptions=True)
        display.done()

    audio = np.frombuffer(b"".join(recorded), dtype="<i2")
    soundfile.write(options.out, audio, out_rate, subtype="PCM_16")
    played = [i for i, s in progress.reply_states.items() if s == session_pb2.UTTERANCE_STATE_PLAYED]
    print(f"wrote {options.out}: {len(audio) / out_rate:.1f} s at {out_rate} Hz; "
          f"reply {'played' if played else 'did not play'}", file=display_out, flush=True)
    return 0 if played else 1
