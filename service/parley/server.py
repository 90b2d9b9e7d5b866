"""The gRPC server: wiring, health, reflection, interceptors, drain and shutdown."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from parley.api.auth import AuthInterceptor, load_tokens
from parley.api.call_tracing import CallTracingInterceptor
from parley.api.caller_limit import CallerRateLimit
from parley.api.decoding import DecodeGuard
from parley.api.servicer import AgentSessionServicer
from parley.api.tls import server_credentials
from parley.providers.registry import warm_up_defaults
from parley.providers.workers import Workers
from parley.reflection import DocumentedPool
from parley.sessions.registry import SessionRegistry
from parley.settings import ServerSettings, StartupError
from parley.telemetry import Telemetry
from parley.v1 import agent_session_service_pb2, agent_session_service_pb2_grpc

log = logging.getLogger("parley.server")

SERVICE_NAME = agent_session_service_pb2.DESCRIPTOR.services_by_name["AgentSessionService"].full_name
REOPEN_RETRY_SECONDS = 1.0  # between attempts to open the Start-only listener again
FULL_PASS_EVERY = 100  # second-generation collections per full one (the interpreter's default: 10)


class ParleyServer:
    """Owns the grpc.aio server and the session registry from start to stop."""

    def __init__(self, settings: ServerSettings, telemetry: Telemetry | None = None) -> None:
        """`telemetry`: an embedder's own providers; by default built from the OTLP settings (off without them)."""
        self.settings = settings
        try:
            self.telemetry = telemetry or Telemetry.from_settings(
                settings.otel_endpoint, settings.otel_protocol, settings.otel_service_name)
        except ValueError as exc:  # a bad OTEL_* variable
            raise StartupError(str(exc)) from None
        self.registry = SessionRegistry(
            settings.registry, workers=Workers(settings.provider_threads or None, settings.provider_nice,
                                                settings.provider_idle_policy),
            observers=self.telemetry,
            replica=settings.replica_id)
        self.telemetry.instruments.watch_streams(self.registry.stream_slots)
        self._tokens = load_tokens(settings)  # read (and checked) before anything binds
        self._credentials = server_credentials(settings)
        self._health = health.aio.HealthServicer()
        self._servicer = AgentSessionServicer(self.registry)
        self._server: grpc.aio.Server | None = None
        self._start_server: grpc.aio.Server | None = None  # the Start-only listener a proxy uses (start_port)
        self._start_steering = asyncio.Lock()  # one change of the Start-only listener at a time
        self._slots_changed = asyncio.Event()
        self._following_slots: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._not_serving = False
        self._stopped = asyncio.Event()
        self.port = 0
        self.start_port = 0

    async def start(self) -> int:
        """Bind and start serving; returns the bound port (useful with port 0).

        An address that cannot be bound is StartupError, naming it; the server
        then releases what it holds.
        """
        s = self.settings
        try:
            self._server, self.port = await self._listen(s.port)
            if s.start_port:
                self._start_server, self.start_port = await self._listen(s.start_port)
        except StartupError:
            if self._server is not None:
                await self._server.stop(None)
                self._server = None
            await self._release()
            raise
        self.registry.start_reaper()
        if self._start_server is not None:
            self.registry.stream_slots.watch_full(self._slots_changed.set)
            self._following_slots = asyncio.create_task(self._follow_stream_slots())
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"address": f"{s.host}:{self.port}", "tls": self._credentials is not None,
                                   "auth": bool(self._tokens), "replica": s.replica_id,
                                   "start_address": f"{s.host}:{self.start_port}" if s.start_port else ""})
        return self.port

    async def _listen(self, port: int) -> tuple[grpc.aio.Server, int]:
        """A started gRPC server with every service on `port` of the host, and the port it bound."""
        s = self.settings
        address = f"{s.host}:{port}"
        server = self._grpc_server()
        try:
            if port and not s.allow_reuse_port:
                ensure_free(s.host, port, address)
            bound = self._add_port(server, address)
        except StartupError:
            await server.stop(None)
            raise
        await server.start()
        return server, bound

    def _grpc_server(self) -> grpc.aio.Server:
        s = self.settings
        options = [
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", s.max_message_bytes),
            ("grpc.keepalive_time_ms", int(s.keepalive_time * 1000)),
            ("grpc.keepalive_timeout_ms", int(s.keepalive_timeout * 1000)),
            ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ("grpc.keepalive_permit_without_calls", 1),
            # off, a second server on the same port fails to bind instead of silently sharing its calls
            ("grpc.so_reuseport", int(s.allow_reuse_port)),
        ]
        # in call order: each one's checks run before the next one's
        interceptors: list[grpc.aio.ServerInterceptor] = []
        if self._tokens:
            interceptors.append(AuthInterceptor(self._tokens))
        if s.max_caller_requests_per_second > 0:
            interceptors.append(CallerRateLimit(s.max_caller_requests_per_second, s.caller_request_burst))
        if self.telemetry.enabled:
            interceptors.append(CallTracingInterceptor(SERVICE_NAME))
        interceptors.append(DecodeGuard(SERVICE_NAME))
        server = grpc.aio.server(interceptors=interceptors, options=options)
        agent_session_service_pb2_grpc.add_AgentSessionServiceServicer_to_server(self._servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server,
                                            pool=DocumentedPool())
        return server

    def _add_port(self, server: grpc.aio.Server, address: str) -> int:
        try:
            if self._credentials is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, self._credentials)
        except RuntimeError:
            port = 0
        if port == 0:
            raise StartupError(f"cannot listen on {address}: the address is in use or not available here")
        return port

    async def _release(self) -> None:
        """Provider threads and telemetry exporters: what the server holds besides its sessions."""
        self.registry.workers.close()
        await self.telemetry.shutdown()

    async def drain(self) -> None:
        """The SIGTERM path: stop taking sessions, let the live ones finish, then stop.

        Health turns NOT_SERVING, the Start-only listener (start_port) closes
        so a proxy sends Starts to other replicas, and Start answers
        UNAVAILABLE. Every call of an open session keeps working until the
        session closes, or until `drain_timeout` seconds after the signal,
        when stop() closes what is left.
        """
        if self._server is None or self._not_serving:
            return  # not started, or already draining or stopping
        await self.begin_drain()
        try:
            await asyncio.wait_for(self.registry.wait_empty(), self.settings.drain_timeout)
            log.info("drained")
        except TimeoutError:
            log.warning("drain timeout: closing the sessions still open",
                        extra={"sessions": self.registry.active_count})
        await self.stop()

    async def stop(self) -> None:
        """Stop now.

        Health turns NOT_SERVING and Start UNAVAILABLE; every session closes
        (its streams end with SessionClosed, its waiters wake up); the calls
        still in flight then get `shutdown_grace` seconds to finish.
        """
        if self._server is None:
            return
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        assert self._server is not None
        await self.begin_drain()
        if self._following_slots is not None:
            self._following_slots.cancel()
            await asyncio.gather(self._following_slots, return_exceptions=True)
        await self.registry.shutdown()
        await self._server.stop(self.settings.shutdown_grace)
        await self._release()
        self._stopped.set()
        log.info("stopped")

    async def begin_drain(self) -> None:
        """Health NOT_SERVING, the Start-only listener closed and Start UNAVAILABLE; open sessions keep running."""
        if self._not_serving:
            return
        self._not_serving = True
        log.info("draining", extra={"sessions": self.registry.active_count})
        self.registry.stop_accepting()
        await self._health.enter_graceful_shutdown()
        await self._steer_starts()

    async def _follow_stream_slots(self) -> None:
        while True:
            await self._slots_changed.wait()
            self._slots_changed.clear()
            await self._steer_starts()

    async def _steer_starts(self) -> None:
        """Keep the Start-only listener open exactly while this process takes new calls.

        It closes while the server drains, and while every stream slot is
        taken (max_streams): a proxy's connection to it is then refused, and
        the proxy sends the Start to another replica, where the new call's
        stream can attach. It opens again once a slot frees. Closing refuses
        new connections at once; Starts already on it finish.
        """
        async with self._start_steering:
            wanted = not self._not_serving and not self.registry.stream_slots.full
            if not wanted and self._start_server is not None:
                server, self._start_server = self._start_server, None
                await server.stop(self.settings.shutdown_grace)
                if not self._not_serving:
                    log.info("every stream slot taken: new sessions go to other replicas",
                             extra={"streams": self.registry.stream_slots.in_use})
            elif wanted and self._start_server is None:
                try:
                    self._start_server, _ = await self._listen(self.start_port)
                except StartupError as exc:  # the port taken meanwhile: try again in a second
                    log.error("cannot reopen the Start-only listener", extra={"error": str(exc)})
                    asyncio.get_running_loop().call_later(REOPEN_RETRY_SECONDS, self._slots_changed.set)
                    return
                log.info("a stream slot free: taking new sessions again",
                         extra={"streams": self.registry.stream_slots.in_use})

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


def ensure_free(host: str, port: int, address: str) -> None:
    """StartupError when another socket listens on the address (checked before gRPC tries, and logs, the bind)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {address}: {exc.strerror}") from None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds: TIME_WAIT is no conflict
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise StartupError(f"cannot listen on {address}: the address is in use") from None
                raise StartupError(f"cannot listen on {address}: {exc.strerror}") from None


def prepare_heap_for_serving() -> None:
    """Keep the garbage collector's full passes off the audio's timeline.

    A full pass walks every tracked object and holds the event loop while it
    does. Over the start-up heap (modules, loaded models) that was a stall of
    up to 100 ms, late frames for every session at once: what start-up made is
    frozen, out of the collector's sight (never freed, which is right for what
    lives as long as the process). Over the sessions' own objects a full pass
    still takes 6-10 ms with 100 calls, and by default one comes after every
    10 second-generation passes, every 2.7 s under that load; one after every
    `FULL_PASS_EVERY` comes every half minute. Garbage in reference cycles
    (cancelled tasks, caught exceptions: about 400 objects a second then)
    waits that long to be freed.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_PASS_EVERY)


async def serve(settings: ServerSettings) -> None:
    """Run until SIGTERM (drain, then stop) or SIGINT (stop now, also during a drain), then return."""
    server = ParleyServer(settings)
    if settings.warm_up:
        # Before serving: the llama.cpp loader silences the whole process's stderr
        # (our logs included) while it loads, and the first caller would wait anyway.
        await warm_up_defaults(server.registry.workers)
    prepare_heap_for_serving()
    await server.start()
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def run(step: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = asyncio.create_task(step())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGTERM, run, server.drain)
    loop.add_signal_handler(signal.SIGINT, run, server.stop)
    await server.wait_stopped()
