"""`parley serve --workers N`: N server processes on one machine, kept running.

A Python process computes on one core, so a machine with N cores runs N
workers. Each is a whole `parley serve` (its own engine, sessions and health)
on its own port: `port`, `port + 1`, ... `port + N - 1` (and its Start-only
port `start_port + i`, when set), with the replica id
`{replica_id}-{i}` in its session names, so a proxy (deploy/) routes every
call of a session to the worker that owns it. The supervisor only keeps them
alive: a worker that exits on its own is logged and started again (after a
delay that grows while it keeps failing fast); SIGTERM is passed on to every
worker, which drains; SIGINT too, which stops at once. The supervisor exits
when the last worker has.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess

from pydantic import ValidationError

from parley import logs
from parley.settings import ServerSettings, StartupError

log = logging.getLogger("parley.workers")

DEFAULT_REPLICA_ID = "w"
_PR_SET_PDEATHSIG = 1


def worker_replica_id(replica_id: str, index: int) -> str:
    return f"{replica_id or DEFAULT_REPLICA_ID}-{index}"


def worker_settings(settings: ServerSettings, index: int) -> ServerSettings:
    """The settings of worker `index`: its own ports and replica id, no workers of its own."""
    return settings.replace(workers=0, port=settings.port + index,
                            start_port=settings.start_port + index if settings.start_port else 0,
                            replica_id=worker_replica_id(settings.replica_id, index))


def run_worker(settings: ServerSettings) -> None:
    """A worker process's body: one ordinary server."""
    from parley.server import serve

    if sys.platform == "linux":  # a worker outliving a killed supervisor drains and stops
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    logs.configure(settings.log_level, replica=settings.replica_id)
    asyncio.run(serve(settings))


@dataclasses.dataclass(frozen=True)
class RestartPolicy:
    delay: float = 1.0  # seconds before a restart
    max_delay: float = 30.0  # the delay doubles up to this while a worker keeps failing fast
    healthy_after: float = 30.0  # a worker that ran this long starts again after `delay`


class Supervisor:
    def __init__(self, settings: ServerSettings, policy: RestartPolicy = RestartPolicy()) -> None:  # noqa: B008
        if settings.workers < 1:
            raise StartupError("--workers: at least 1")
        if settings.port == 0:
            raise StartupError("--port: the workers listen on port..port+N-1, so give a fixed port, not 0")
        try:
            self._workers = [worker_settings(settings, i) for i in range(settings.workers)]
        except ValidationError as exc:
            raise StartupError(f"--replica-id {settings.replica_id!r} cannot name the workers: "
                               f"{exc.errors()[0]['msg']}") from None
        self.settings = settings
        self.policy = policy
        self._context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited loop or threads
        self._running: dict[int, BaseProcess] = {}
        self._stopping = asyncio.Event()

    async def run(self) -> int:
        """Start the workers, keep them running until a signal, return once all have exited."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig)
        first, last = self.settings.port, self.settings.port + self.settings.workers - 1
        log.info("workers starting", extra={"workers": self.settings.workers, "ports": f"{first}..{last}"})
        await asyncio.gather(*(self._keep(i) for i in range(self.settings.workers)))
        log.info("workers stopped")
        return 0

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Pass `sig` on to every worker (SIGTERM: drain, SIGINT: stop now); none is restarted after this."""
        self._stopping.set()
        log.info("workers stopping", extra={"signal": sig.name})
        for process in self._running.values():
            _signal(process, sig)

    async def _keep(self, index: int) -> None:
        """Run worker `index` until the supervisor stops, starting it again whenever it exits."""
        settings = self._workers[index]
        delay = self.policy.delay
        while not self._stopping.is_set():
            process = self._context.Process(target=run_worker, args=(settings,), name=f"parley {settings.replica_id}")
            process.start()
            self._running[index] = process
            started = time.monotonic()
            log.info("worker started", extra={"replica": settings.replica_id, "port": settings.port,
                                              "pid": process.pid})
            await _exited(process)
            del self._running[index]
            if self._stopping.is_set():
                log.info("worker stopped", extra={"replica": settings.replica_id, "exit": _describe(process)})
                return
            delay = self.policy.delay if time.monotonic() - started >= self.policy.healthy_after else delay
            # exit 0 is a drained worker (SIGTERM sent to it alone: a rolling restart); anything else a crash
            log.log(logging.INFO if process.exitcode == 0 else logging.WARNING, "worker exited; restarting", extra={
                "replica": settings.replica_id, "pid": process.pid, "exit": _describe(process), "restart_in": delay,
            })
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, self.policy.max_delay)


async def _exited(process: BaseProcess) -> None:
    """Wait for `process` to end without blocking the loop (its sentinel becomes readable)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def exited() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(process.sentinel, exited)
    try:
        await done
    finally:
        loop.remove_reader(process.sentinel)
    process.join()


def _signal(process: BaseProcess, sig: signal.Signals) -> None:
    try:
        os.kill(process.pid, sig)  # type: ignore[arg-type]
    except ProcessLookupError:
        pass  # it has just exited; _keep sees that


def _describe(process: BaseProcess) -> str:
    code = process.exitcode
    if code is None:
        return "running"
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"


def serve_workers(settings: ServerSettings) -> int:
    return asyncio.run(Supervisor(settings).run())
