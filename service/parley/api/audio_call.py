"""One StreamAudio call's reads and writes, run from gRPC's completion callbacks instead of tasks.

A call reads a chunk of the caller's audio and writes a frame of the agent's
every 20 ms. Done with a reader task beside the handler's writer, each frame
cost three task steps: the reader woken by the chunk, the writer woken by the
frame, and the writer again when the write finished. Here a frame's write
starts right where the frame clock queues it (the outbox calls `_write_next`),
and each finished read or write runs one plain callback that starts the next
one: per frame, the loop does what a bare echo's one task does. The handler's
own task only waits for the end of the call.

`Driven` runs a grpc.aio read or write coroutine as a task would, resuming it
each time the future it waits on is done, but without a task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from parley.api import converters as conv
from parley.errors import InvalidArgument, ParleyError
from parley.sessions.session import Session
from parley.sessions.stream import AttachedStream, OutFrame, SessionEvent
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import audio_pb2

log = logging.getLogger("parley.api")

Finished = Callable[[Any, BaseException | None], None]


class Driven:
    """Runs `coroutine`, once started, from the done-callbacks of the futures it waits on; then
    `finished(result, error)`."""

    __slots__ = ("_coroutine", "_finished", "_waiting")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], finished: Finished) -> None:
        self._coroutine = coroutine
        self._finished = finished
        self._waiting: asyncio.Future[Any] | None = None

    def start(self) -> None:
        self._step(None)

    def _step(self, _: object) -> None:
        self._waiting = None
        try:
            waiting = self._coroutine.send(None)
        except StopIteration as stop:
            self._finished(stop.value, None)
        except (Exception, asyncio.CancelledError) as exc:
            self._finished(None, exc)
        else:
            if waiting is None:  # a bare yield: resume on the next loop pass, as a task would
                asyncio.get_running_loop().call_soon(self._step, None)
            else:
                self._waiting = waiting
                waiting.add_done_callback(self._step)

    def cancel(self) -> None:
        """Cancel what the coroutine waits on; it then ends with CancelledError (as a cancelled task's would)."""
        if self._waiting is not None:
            self._waiting.cancel()


class AudioCall:
    """Feeds the caller's chunks to the session and writes the stream's outbox to the caller, in order.

    How it ends: the stream ended and all of it was written (`run` returns);
    the stream failed, with a ParleyError or a bug of ours (`run` raises it,
    for the status); or the call itself is gone, cut by the client or by the
    server's stop (a read or write failed in gRPC: `run` returns, there is
    nobody to tell).
    """

    def __init__(self, context: grpc.aio.ServicerContext, session: Session, stream: AttachedStream) -> None:
        loop = asyncio.get_running_loop()
        self._context = context
        self._session = session
        self._stream = stream
        self._over: asyncio.Future[None] = loop.create_future()  # all written or the call gone; or the error
        self._caller_done: asyncio.Future[None] = loop.create_future()  # half-closed, or the call gone
        self._reading: Driven | None = None
        self._writing: Driven | None = None
        self._closed = False

    async def run(self, drain_seconds: float) -> None:
        """Until the stream ends; raises what it failed with.

        Either way the caller then gets up to `drain_seconds` to stop writing
        before the status goes out (what it still sends is dropped): a client
        still writing when the status arrives may report INTERNAL instead
        (grpcio).
        """
        try:
            self._read_next()
            self._stream.outbox.watch(self._write_next)
            await asyncio.wait([self._over])
            await asyncio.wait([self._caller_done], timeout=drain_seconds)
        finally:
            self._close()
        self._over.result()

    # -- the caller's chunks in ---------------------------------------------------------------

    def _read_next(self) -> None:
        self._reading = Driven(self._context.read(), self._on_read)
        self._reading.start()

    def _on_read(self, message: Any, error: BaseException | None) -> None:
        self._reading = None
        if self._closed:
            return
        if error is not None and not isinstance(error, ParleyError):
            self._call_gone(error)
            return
        if message is grpc.aio.EOF:
            _settle(self._caller_done)
            return
        if self._over.done():
            pass  # the call is ending: what the caller still sends is dropped
        elif error is not None:  # a message that did not decode
            self._stream.outbox.fail(error)
        else:
            try:
                if message.WhichOneof("message") != "audio":
                    raise InvalidArgument("config", "config may only be the first message of a stream")
                self._session.push_audio(self._stream, message.audio.pcm)
            except ParleyError as exc:
                self._stream.outbox.fail(exc)
            except Exception as exc:  # a bug: end the call with it rather than go on deaf
                self._fail(exc)
        self._read_next()

    # -- the session's frames and events out -------------------------------------------------

    def _write_next(self) -> None:
        if self._writing is not None or self._closed:
            return
        try:
            item = self._stream.outbox.take()
            if item is None:
                if self._stream.outbox.drained:
                    _settle(self._over)
                return
            message = _to_proto(item)
        except Exception as exc:  # the stream's error, or a bug converting an item
            self._fail(exc)
            return
        self._writing = Driven(self._context.write(message), self._on_written)
        self._writing.start()

    def _on_written(self, _: None, error: BaseException | None) -> None:
        self._writing = None
        if self._closed:
            return
        if error is not None:
            self._call_gone(error)
            return
        self._write_next()

    # -- the end -------------------------------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        if not self._over.done():
            self._over.set_exception(error)

    def _call_gone(self, error: BaseException) -> None:
        log.debug("audio stream cut", extra={"error": repr(error)})
        _settle(self._caller_done)
        _settle(self._over)

    def _close(self) -> None:
        self._closed = True
        for pending in (self._reading, self._writing):
            if pending is not None:
                pending.cancel()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _to_proto(item: OutFrame | SessionEvent) -> pb.StreamAudioResponse:
    if isinstance(item, OutFrame):
        return pb.StreamAudioResponse(audio=audio_pb2.AudioFrame(
            pcm=item.pcm, sequence=item.sequence, timestamp_ms=item.timestamp_ms, utterance_id=item.utterance_id,
        ))
    return pb.StreamAudioResponse(event=conv.event_to_proto(item))
