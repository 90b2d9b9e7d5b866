"""A model hosted in a process of its own, for inference that must not share the event loop's GIL.

A worker thread that runs a model releases the GIL inside native code, but
takes it back for the model's own Python (feature extraction, decoding
loops, result objects), and a lower-priority thread that holds the GIL makes
the loop wait for it. Under load that delays every call's audio. A model in
a child process shares no GIL with the loop, and its lower priority then
only ever makes the model wait: the child is started from a provider thread
(`Workers`) and so runs at the provider threads' priority.

The child is `python -m parley.providers.model_host`, started on first use
(a fresh interpreter: it inherits neither the server's threads nor its main
module). It loads the model, then runs one job at a time: the parent sends
a pickled (function, arguments) on the child's stdin and reads the pickled
result from its stdout; a worker thread waits for the answer, so no event
loop is tied to the child. A child that dies fails the job it had with
`ModelProcessDied`; the next job starts a new child, which loads the model
again. A job that runs past `job_timeout` (a wedged native library) has its
child killed, which a model on a thread could never have: the job fails the
same way and the model is usable again. The child exits when its stdin
closes (the server ended).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, TypeVar, cast

from parley.providers.workers import Workers

T = TypeVar("T")


class ModelProcessDied(RuntimeError):
    """The child process ended while it held a job (killed, out of memory, a crash in native code)."""


class ModelProcess:
    """`load` and the functions run on the model must be importable by name (they are pickled to the child)."""

    def __init__(self, load: Callable[[], Any], job_timeout: float) -> None:
        self._load = load
        self._job_timeout = job_timeout  # seconds, the first job's model load included
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one job at a time: a request and its answer

    async def run(self, workers: Workers, fn: Callable[..., T], *args: Any) -> T:
        """fn(model, *args) in the child; the model is loaded there before the first job."""
        return await workers.run(self._request, fn, args)

    async def start(self, workers: Workers) -> int:
        """Start the child and load the model (if not done yet); the child's process id."""
        return await self.run(workers, _pid)

    def close(self) -> None:
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            _stop(child)

    def _request(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._lock:
            child = self._started()
            assert child.stdin is not None and child.stdout is not None
            expired = threading.Event()

            def expire() -> None:
                expired.set()  # before the kill, so the reader below sees it once the pipe ends
                child.kill()

            watchdog = threading.Timer(self._job_timeout, expire)
            watchdog.start()
            try:
                _send(child.stdin, (fn, args))
                ok, value = pickle.load(child.stdout)
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                self._child = None
                _stop(child)
                timed_out = f" after the job ran {self._job_timeout:g} s" if expired.is_set() else ""
                raise ModelProcessDied(f"the model's process ended{timed_out} (exit code {child.poll()})") from exc
            finally:
                watchdog.cancel()
        if not ok:
            raise RuntimeError(value)
        return cast(T, value)

    def _started(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is not None:
            _stop(self._child)  # died while idle: its pipes go with it
            self._child = None
        if self._child is None:
            child = subprocess.Popen([sys.executable, "-m", "parley.providers.model_host"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
            assert child.stdin is not None
            _send(child.stdin, self._load)
            self._child = child
        return self._child


def _pid(_model: object) -> int:
    return os.getpid()


def _send(pipe: IO[bytes], message: object) -> None:
    pickle.dump(message, pipe, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.flush()


def _stop(child: subprocess.Popen[bytes]) -> None:
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
