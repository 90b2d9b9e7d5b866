"""A Parley client with the generated Python stubs.

It starts a session, streams a WAV file as the caller's audio in real time,
prints every event as it arrives, waits for the agent's spoken reply, then
says a long sentence and interrupts it, closes the session, and writes all
the agent audio it received to a WAV file.

    python examples/python/client.py --wav examples/audio/question.wav --out reply.wav

Event lines look like `event <sequence> <kind> <details>`, where kind is the
name of the field set in SessionEvent's `event` oneof.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
import wave

import grpc

from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import audio_pb2, events_pb2, session_pb2

CHUNK_MS = 20
LONG_TEXT = ("Let me tell you a long story about the sea, the wind, and a small boat that sailed "
             "from one harbour to the next for many, many years.")


def short(enum, value: int) -> str:
    """AGENT_STATE_IDLE -> idle."""
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.DESCRIPTOR.name).upper() + "_"
    return enum.Name(value).removeprefix(prefix).lower()


def describe(event: events_pb2.SessionEvent) -> str:
    """`event <sequence> <kind> <details>`, the details in plain words."""
    kind = event.WhichOneof("event")
    body = getattr(event, kind)
    if kind in ("agent_state_changed", "user_state_changed"):
        enum = session_pb2.AgentState if kind == "agent_state_changed" else session_pb2.UserState
        detail = f"{short(enum, body.old_state)} -> {short(enum, body.new_state)}"
    elif kind == "transcript":
        detail = f"{'final' if body.is_final else 'interim'} {body.text!r}"
    elif kind == "utterance_updated":
        u = body.utterance
        detail = (f"{u.id} {short(session_pb2.UtteranceSource, u.source)} "
                  f"{short(session_pb2.UtteranceState, u.state)} {u.text!r}")
    elif kind == "agent_text":
        detail = f"{body.utterance_id} {body.text!r}"
    elif kind in ("tool_call_requested", "tool_call_completed"):
        detail = f"{body.call.name}({body.call.arguments_json}) id {body.call.id}"
    elif kind == "clear_audio":
        detail = f"drop buffered audio of {body.utterance_id}"
    elif kind == "interruption":
        detail = f"{short(events_pb2.InterruptionKind, body.kind)} {body.utterance_id}"
    elif kind == "metrics_updated":
        detail = f"end to end {body.turn.e2e_latency_ms:.0f} ms"
    elif kind == "warning":
        detail = f"{body.reason}: {body.message}"
    elif kind == "session_closed":
        detail = repr(body.reason)
    else:  # wake_up, frames_dropped: their fields as name=value
        detail = " ".join(f"{f.name}={v}" for f, v in body.ListFields())
    return f"event {event.sequence} {kind} {detail}"


class Call:
    """The StreamAudio call: records frames, prints events, lets the main flow wait on them."""

    def __init__(self, call: grpc.aio.StreamStreamCall) -> None:
        self.call = call
        self.pcm = bytearray()
        self.events: list[events_pb2.SessionEvent] = []
        self.answered = asyncio.Event()  # the first message: the server took the stream
        self._changed = asyncio.Event()

    async def read(self) -> None:
        async for response in self.call:
            self.answered.set()
            if response.WhichOneof("message") == "audio":
                self.pcm += response.audio.pcm
            else:
                self.events.append(response.event)
                print(describe(response.event), flush=True)
            self._changed.set()

    def utterance(self, source: int, states: tuple[int, ...]) -> session_pb2.Utterance | None:
        for event in self.events:
            u = event.utterance_updated.utterance
            if event.WhichOneof("event") == "utterance_updated" and u.source == source and u.state in states:
                return u
        return None

    async def until(self, found, timeout: float):
        """Wait until `found()` returns something, at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (result := found()) is None:
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        return result


async def send_realtime(call: Call, pcm: bytes, bytes_per_chunk: int, keep_going: asyncio.Event) -> None:
    """The file in 20 ms chunks at real-time pace, then silence while `keep_going` is set.

    Audio goes only once the stream answered: a refused stream (the server's max_streams, a closed
    session) then ends with its own status, which a write racing it would turn into INTERNAL.
    """
    await call.answered.wait()
    start = time.monotonic()
    n = 0
    silence = bytes(bytes_per_chunk)
    while n * bytes_per_chunk < len(pcm) or keep_going.is_set():
        chunk = pcm[n * bytes_per_chunk:(n + 1) * bytes_per_chunk] or silence
        await call.call.write(pb.StreamAudioRequest(audio=audio_pb2.AudioChunk(pcm=chunk)))
        n += 1
        await asyncio.sleep(max(0.0, start + n * CHUNK_MS / 1000 - time.monotonic()))


async def run(args: argparse.Namespace) -> int:
    with wave.open(args.wav, "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{args.wav}: need 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        rate, channels, pcm = w.getframerate(), w.getnchannels(), w.readframes(w.getnframes())

    # With authentication on, every call carries the bearer token (PARLEY_TOKEN).
    auth = (("authorization", f"Bearer {os.environ['PARLEY_TOKEN']}"),) if os.environ.get("PARLEY_TOKEN") else ()
    async with grpc.aio.insecure_channel(args.address) as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        config = session_pb2.SessionConfig(instructions="You are a helpful voice assistant. Answer in one sentence.")
        session = (await stub.Start(pb.StartRequest(config=config), metadata=auth)).session
        out_rate = session.config.output_format.sample_rate_hz  # defaults are filled in
        print(f"started {session.name} (output {out_rate} Hz)", flush=True)
        # Every call about the session names it in x-parley-session: behind a proxy that reaches
        # the server process that owns the session (a single server ignores it).
        auth += (("x-parley-session", session.name),)

        call = Call(stub.StreamAudio(metadata=auth))
        await call.call.write(pb.StreamAudioRequest(config=pb.StreamConfig(
            session=session.name,
            input_format=audio_pb2.AudioFormat(sample_rate_hz=rate, channels=channels),
        )))
        reader = asyncio.create_task(call.read())
        keep_going = asyncio.Event()
        keep_going.set()
        sender = asyncio.create_task(send_realtime(call, pcm, rate * channels * 2 * CHUNK_MS // 1000, keep_going))

        final = (session_pb2.UTTERANCE_STATE_PLAYED, session_pb2.UTTERANCE_STATE_INTERRUPTED,
                 session_pb2.UTTERANCE_STATE_FAILED)
        reply = await call.until(lambda: call.utterance(session_pb2.UTTERANCE_SOURCE_REPLY, final), args.timeout)
        print(f"reply {short(session_pb2.UtteranceState, reply.state)}: {reply.text!r}", flush=True)

        await stub.Say(pb.SayRequest(session=session.name, text=LONG_TEXT), metadata=auth)
        await call.until(lambda: call.utterance(session_pb2.UTTERANCE_SOURCE_SAY,
                                                (session_pb2.UTTERANCE_STATE_SPEAKING,)), args.timeout)
        await asyncio.sleep(0.5)  # let the caller hear the start of it
        cut = (await stub.Interrupt(pb.InterruptRequest(session=session.name), metadata=auth)).interrupted
        print(f"interrupted {[u.id for u in cut]}; heard {cut[0].heard_text if cut else ''!r}", flush=True)

        keep_going.clear()
        await sender
        closed = (await stub.Close(pb.CloseRequest(session=session.name, reason="example done"),
                                  metadata=auth)).session
        await reader  # the stream ends after the session_closed event
        print(f"closed: {closed.close_reason!r}", flush=True)

    with wave.open(args.out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(out_rate)
        w.writeframes(bytes(call.pcm))
    print(f"wrote {args.out}: {len(call.pcm) / 2 / out_rate:.1f} s at {out_rate} Hz", flush=True)
    return 0 if reply.state == session_pb2.UTTERANCE_STATE_PLAYED else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default=os.environ.get("PARLEY_ADDRESS", "127.0.0.1:50051"),
                        help="host:port of the server (env PARLEY_ADDRESS; default 127.0.0.1:50051)")
    parser.add_argument("--wav", required=True, help="the caller's audio: a 16-bit PCM WAV, 8..48 kHz")
    parser.add_argument("--out", default="reply.wav", help="where to write the agent's audio")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the reply")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
