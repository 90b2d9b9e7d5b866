"""The gRPC server: wiring, health, reflection, interceptors and shutdown."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from parley.api.auth import AuthInterceptor, load_tokens
from parley.api.call_tracing import CallTracingInterceptor
from parley.api.caller_limit import CallerRateLimit
from parley.api.decoding import DecodeGuard
from parley.api.interceptors import DrainInterceptor
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
            settings.registry, workers=Workers(settings.provider_threads or None), observers=self.telemetry)
        self._drain = DrainInterceptor()
        self._tokens = load_tokens(settings)  # read (and checked) before anything binds
        self._credentials = server_credentials(settings)
        self._health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._stopped = asyncio.Event()
        self.port = 0

    async def start(self) -> int:
        """Bind and start serving; returns the bound port (useful with port 0).

        An address that cannot be bound is StartupError, naming it; the server
        then releases what it holds.
        """
        s = self.settings
        address = f"{s.host}:{s.port}"
        server = self._grpc_server()
        try:
            if s.port and not s.allow_reuse_port:
                ensure_free(s.host, s.port, address)
            self.port = self._add_port(server, address)
        except StartupError:
            await server.stop(None)
            await self._release()
            raise
        await server.start()
        self._server = server
        self.registry.start_reaper()
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"address": f"{s.host}:{self.port}", "tls": self._credentials is not None,
                                   "auth": bool(self._tokens)})
        return self.port

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
        interceptors: list[grpc.aio.ServerInterceptor] = [self._drain]
        if self._tokens:
            interceptors.append(AuthInterceptor(self._tokens))
        if s.max_caller_requests_per_second > 0:
            interceptors.append(CallerRateLimit(s.max_caller_requests_per_second, s.caller_request_burst))
        if self.telemetry.enabled:
            interceptors.append(CallTracingInterceptor(SERVICE_NAME))
        interceptors.append(DecodeGuard(SERVICE_NAME))
        server = grpc.aio.server(interceptors=interceptors, options=options)
        agent_session_service_pb2_grpc.add_AgentSessionServiceServicer_to_server(
            AgentSessionServicer(self.registry), server
        )
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

    async def stop(self) -> None:
        """Drain and stop.

        Health flips to NOT_SERVING and new calls get UNAVAILABLE; every session
        closes (its streams end with SessionClosed, its waiters wake up); the
        calls still in flight then get `shutdown_grace` seconds to finish.
        """
        if self._server is None or self._stopped.is_set():
            return
        await self.begin_drain()
        await self.registry.shutdown()
        await self._server.stop(self.settings.shutdown_grace)
        await self._release()
        self._stopped.set()
        log.info("stopped")

    async def begin_drain(self) -> None:
        """Health NOT_SERVING and UNAVAILABLE for new calls; what runs keeps running."""
        if not self._drain.draining:
            log.info("draining")
            await self._health.enter_graceful_shutdown()
            self._drain.draining = True

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


async def serve(settings: ServerSettings) -> None:
    """Run until SIGTERM or SIGINT, then drain and return."""
    server = ParleyServer(settings)
    if settings.warm_up:
        # Before serving: the llama.cpp loader silences the whole process's stderr
        # (our logs included) while it loads, and the first caller would wait anyway.
        await warm_up_defaults(server.registry.workers)
    await server.start()
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stop() -> None:
        if not stopping:
            stopping.append(asyncio.create_task(server.stop()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    await server.wait_stopped()
