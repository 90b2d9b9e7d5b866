"""A model hosted in a process of its own, for inference that must not share the event loop's GIL.

A worker thread that runs a model releases the GIL inside native code, but
takes it back for the model's own Python (feature extraction, decoding
loops, result objects), and a lower-priority thread that holds the GIL makes
the loop wait for it. Under load that delays every call's audio. A model in
a child process shares no GIL with the loop, and its lower priority then
only ever makes the model wait: the child is started from a provider thread
(`Workers`) and so runs at the provider threads' priority. A crash in the
model's native code (a segfault, an illegal instruction) ends the child,
not the server and its calls.

The child is `python -m parley.providers.model_host`, started on first use
(a fresh interpreter: it inherits neither the server's threads nor its main
module). It loads the model, then runs one job at a time: a call, answered
with one result, or a stream, a generator on the model whose items come
back as it yields them and which the parent can stop between items. Jobs
and answers are length-prefixed pickles over the child's stdin and stdout;
a worker thread waits for the answers, so no event loop is tied to the
child. A child that dies fails the job it had with `ModelProcessDied`; the
next job starts a new child, which loads the model again. A job that goes
`job_timeout` without an answer (a wedged native library) has its child
killed, which a model on a thread could never have: the job fails the same
way and the model is usable again. The child exits when its stdin closes
(the server ended).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import IO, Any, TypeVar, cast

from parley.providers.threaded import stream_from_thread
from parley.providers.workers import Workers

T = TypeVar("T")

#: glibc's allocator settings for the child (what the server's own environment sets wins). A model's process runs
#: the same job again and again; by default glibc maps each large buffer afresh and hands it back when freed, so the
#: next job faults every page of it in again: 80,000 faults per Whisper transcription, a sixth of its time. Kept,
#: the memory stays resident at the process's peak (Whisper tiny: 457 MiB, against 246 MiB between jobs before).
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
STOP = "stop"  # parent -> child during a stream: close the generator after the item in flight
HEADER_BYTES = 8  # bytes of a message's length


class ModelProcessDied(RuntimeError):
    """The child process ended while it held a job (killed, out of memory, a crash in native code)."""


class ModelProcess:
    """`load` and the functions run on the model must be importable by name (they are pickled to the child)."""

    def __init__(self, load: Callable[[], Any], job_timeout: float) -> None:
        self._load = load
        self._job_timeout = job_timeout  # seconds to each answer, the first job's model load included
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one job at a time: a request and its answers

    async def run(self, workers: Workers, fn: Callable[..., T], *args: Any) -> T:
        """fn(model, *args) in the child; the model is loaded there before the first job."""
        return await workers.run(self._call, fn, args)

    def stream(self, workers: Workers, fn: Callable[..., Iterator[T]], *args: Any,
               on_done: Callable[[], None] = lambda: None) -> AsyncGenerator[T, None]:
        """The items of the generator fn(model, *args), yielded in the child as they come.

        Closing the returned generator stops the child's generator after the
        item in flight; on_done() runs on the loop once the child is free again.
        """
        return stream_from_thread(workers, lambda: self._iterate(fn, args), on_done)

    async def start(self, workers: Workers) -> int:
        """Start the child and load the model (if not done yet); the child's process id."""
        return await self.run(workers, _pid)

    def close(self) -> None:
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            _stop(child)

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._lock:
            child = self._started()
            with _Watchdog(child, self._job_timeout) as watchdog:
                kind, value = self._answer(child, watchdog, ("call", fn, args))
        if kind == "error":
            raise RuntimeError(value)
        return cast(T, value)

    def _iterate(self, fn: Callable[..., Iterator[T]], args: tuple[Any, ...]) -> Iterator[T]:
        with self._lock:
            child = self._started()
            with _Watchdog(child, self._job_timeout) as watchdog:
                kind, value = self._answer(child, watchdog, ("stream", fn, args))
                while kind == "item":
                    try:
                        yield cast(T, value)
                    except GeneratorExit:  # closed early: stop the child's generator, read up to its end
                        kind, value = self._answer(child, watchdog, STOP)
                        while kind == "item":
                            kind, value = self._answer(child, watchdog)
                        raise
                    kind, value = self._answer(child, watchdog)
            if kind == "error":
                raise RuntimeError(value)

    def _answer(self, child: subprocess.Popen[bytes], watchdog: _Watchdog, request: object = None) -> tuple[str, Any]:
        """Send `request` (if any) and read the child's next answer, within the job timeout."""
        assert child.stdin is not None and child.stdout is not None
        watchdog.reset()
        try:
            if request is not None:
                send_message(child.stdin, request)
            return cast(tuple[str, Any], receive_message(child.stdout.read))
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            if self._child is child:
                self._child = None
            _stop(child)
            timed_out = f" after {self._job_timeout:g} s without an answer" if watchdog.expired else ""
            raise ModelProcessDied(f"the model's process ended{timed_out} (exit code {child.poll()})") from exc

    def _started(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is not None:
            _stop(self._child)  # died while idle: its pipes go with it
            self._child = None
        if self._child is None:
            child = subprocess.Popen([sys.executable, "-m", "parley.providers.model_host"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env={**KEEP_FREED_MEMORY, **os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
            assert child.stdin is not None
            send_message(child.stdin, self._load)
            self._child = child
        return self._child


class _Watchdog:
    """Kills a child that goes `timeout` seconds without an answer: one thread per job, reset by each answer."""

    def __init__(self, child: subprocess.Popen[bytes], timeout: float) -> None:
        self._child = child
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._done = False
        self._changed = threading.Condition()
        self.expired = False  # set before the kill, so a reader that sees the pipe end can tell why
        self._thread = threading.Thread(target=self._watch, name="model-process-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        with self._changed:
            self._done = True
            self._changed.notify()
        self._thread.join()

    def reset(self) -> None:
        with self._changed:
            self._deadline = time.monotonic() + self._timeout

    def _watch(self) -> None:
        with self._changed:
            while not self._done:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    self.expired = True
                    self._child.kill()
                    return
                self._changed.wait(left)


def _pid(_model: object) -> int:
    return os.getpid()


def send_message(pipe: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(len(data).to_bytes(HEADER_BYTES, "little") + data)
    pipe.flush()


def receive_message(read: Callable[[int], bytes]) -> Any:
    """The next message from `read(n)`: up to n bytes, b"" once the pipe ended.

    The parent reads its child's stdout object; the child reads its stdin's
    descriptor unbuffered (`os.read`), so that a waiting "stop" shows on the pipe.
    """
    size = int.from_bytes(_read_exactly(read, HEADER_BYTES), "little")
    return pickle.loads(_read_exactly(read, size))


def _read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        block = read(size - len(data))
        if not block:
            raise EOFError("the pipe ended")
        data += block
    return data


def _stop(child: subprocess.Popen[bytes]) -> None:
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
