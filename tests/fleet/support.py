"""A real fleet on loopback: `parley serve --workers N` behind nginx.

nginx comes from the Debian package (.ci/run installs it); a test that needs
it fails, never skips, when it is missing. It runs as a foreground child with
its configuration, pid file, error log and temporary files in the test's
directory, so it needs no system paths and works as root in a sandbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.common import free_port_block
from parley.fleet.nginx import Listed as ListedReplicas
from parley.fleet.nginx import NginxSettings, ProxyTls, Replica, UpstreamTls, consecutive_replicas, render
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS
from tests.pki import Pki

STAND_IN_START = pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS))


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found is None:
        pytest.fail("nginx is not installed: `apt-get install -y nginx` (.ci/run does it)")
    return found


async def wait_until(predicate: Callable[[], object], timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(poll)


def channel_to(address: str, ca: bytes | None = None) -> grpc.aio.Channel:
    """A channel to `address`: TLS checked against `ca` when given, else plaintext."""
    if ca is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca))


async def serving(address: str, ca: bytes | None = None) -> bool:
    """The gRPC server at `address` answers health with SERVING."""
    async with channel_to(address, ca) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.aio.AioRpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


@dataclass(frozen=True)
class FleetTls:
    """Which hops speak TLS, with the certificates of `pki` (the server's names localhost and 127.0.0.1)."""

    pki: Pki
    clients: bool = True  # clients -> nginx
    replicas: bool = True  # nginx -> the workers (and the tests' own health checks)
    replica_name: str = "localhost"  # the name nginx expects on the workers' certificates


@dataclass
class Fleet:
    """nginx on `address`, in front of the workers of one `parley serve --workers N`."""

    directory: Path
    workers: int = 3
    flags: tuple[str, ...] = ()  # more `parley serve` flags
    env: dict[str, str] = field(default_factory=dict)
    tls: FleetTls | None = None
    address: str = ""
    port: int = 0  # the first worker's --port
    start_port: int = 0  # the first worker's --start-port
    supervisor: asyncio.subprocess.Process | None = None
    nginx: asyncio.subprocess.Process | None = None

    def replicas(self, count: int | None = None) -> list[Replica]:
        return consecutive_replicas("127.0.0.1", self.port, self.start_port,
                                    self.workers if count is None else count)

    @property
    def replica_ids(self) -> list[str]:
        return [r.id for r in self.replicas()]

    def worker_address(self, replica: str) -> str:
        return next(r.address for r in self.replicas() if r.id == replica)

    @property
    def supervisor_log(self) -> Path:
        return self.directory / "parley.log"

    @property
    def nginx_log(self) -> Path:
        return self.directory / "nginx.log"

    @property
    def config_path(self) -> Path:
        return self.directory / "nginx.conf"

    def channel(self) -> grpc.aio.Channel:
        """A client's channel to the proxy."""
        return channel_to(self.address, self.tls.pki.ca if self.tls and self.tls.clients else None)

    @property
    def _replica_ca(self) -> bytes | None:
        return self.tls.pki.ca if self.tls and self.tls.replicas else None

    def nginx_settings(self, proxied: int | None = None) -> NginxSettings:
        temp = self.directory / "nginx-temp"
        temp.mkdir(exist_ok=True)
        pki = self.tls.pki if self.tls else None
        return NginxSettings(
            listen=self.address, fleet=ListedReplicas(self.replicas(proxied)), worker_processes="1",
            pid=str(self.directory / "nginx.pid"), temp_dir=str(temp), user="root" if os.geteuid() == 0 else "",
            tls=ProxyTls(str(pki.server_cert), str(pki.server_key)) if pki and self.tls.clients else None,
            upstream_tls=UpstreamTls(str(pki.ca_file), self.tls.replica_name) if pki and self.tls.replicas else None,
        )

    async def start(self, proxied: int | None = None) -> None:
        """The workers, then (once each serves) nginx naming the first `proxied` of them (all by default)."""
        base = free_port_block(2 * self.workers + 1)
        self.address = f"127.0.0.1:{base}"
        self.port, self.start_port = base + 1, base + 1 + self.workers
        tls_flags: tuple[str, ...] = ()
        if self.tls and self.tls.replicas:
            tls_flags = ("--tls-cert", str(self.tls.pki.server_cert), "--tls-key", str(self.tls.pki.server_key))
        with open(self.supervisor_log, "wb") as log:
            self.supervisor = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "parley.cli", "serve", "--workers", str(self.workers),
                "--port", str(self.port), "--start-port", str(self.start_port), "--warm-up", "false",
                "--log-level", "INFO", "--allow-stand-in-providers", *tls_flags, *self.flags, stderr=log,
                env={**os.environ, **self.env},
            )
        for replica in self.replicas():
            await self.wait_serving(replica.id)
        self.config_path.write_text(render(self.nginx_settings(proxied)))
        with open(self.nginx_log, "wb") as log:
            self.nginx = await asyncio.create_subprocess_exec(
                nginx_binary(), "-c", str(self.config_path), "-p", str(self.directory),
                "-e", str(self.nginx_log), stderr=log, stdout=log,
            )
        await self.wait_until(lambda: self._proxy_listening(), 30, "nginx to listen")

    async def wait_serving(self, replica: str, timeout: float = 60) -> None:
        """Until `replica` answers health SERVING on its port (a restarted one included)."""
        address = self.worker_address(replica)
        deadline = time.monotonic() + timeout
        while not await serving(address, self._replica_ca):
            self._check_alive()
            assert time.monotonic() < deadline, f"{replica} never served; log: {self.logs()}"
            await asyncio.sleep(0.1)

    async def wait_until(self, predicate: Callable[[], object], timeout: float, what: str) -> None:
        await wait_until(lambda: self._check_alive() and predicate(), timeout, f"{what}; log: {self.logs()}")

    def _proxy_listening(self) -> bool:
        host, _, port = self.address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError:
            return False
        return True

    def _check_alive(self) -> bool:
        for proc, name in ((self.supervisor, "parley"), (self.nginx, "nginx")):
            if proc is not None and proc.returncode is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}: {self.logs()}")
        return True

    async def reload_proxy(self, proxied: int) -> None:
        """Proxy `proxied` workers from now on: rewrite the configuration, reload nginx in place (SIGHUP)."""
        assert self.nginx is not None
        self.config_path.write_text(render(self.nginx_settings(proxied)))
        before = self.nginx_log.read_text(errors="replace").count("gracefully shutting down")
        self.nginx.send_signal(signal.SIGHUP)
        await self.wait_until(  # the old worker no longer accepts: a new connection meets the new configuration
            lambda: self.nginx_log.read_text(errors="replace").count("gracefully shutting down") > before, 30,
            "nginx to hand over to workers with the new configuration")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in (self.supervisor_log, self.nginx_log) if p.exists())

    def log_events(self, event: str) -> list[dict]:
        lines = self.supervisor_log.read_text(errors="replace").splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return [r for r in records if r.get("event") == event]

    def worker_pid(self, replica: str) -> int:
        started = [r for r in self.log_events("worker started") if r["replica"] == replica]
        assert started, self.logs()
        return int(started[-1]["pid"])

    async def stop(self) -> None:
        for proc in (self.nginx, self.supervisor):
            if proc is not None and proc.returncode is None:
                # nginx: SIGTERM is its fast shutdown; parley: SIGINT stops at once (sessions a test left close)
                proc.send_signal(signal.SIGTERM if proc is self.nginx else signal.SIGINT)
        for proc in (self.nginx, self.supervisor):
            if proc is not None and proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def start_sessions(stub: pb_grpc.AgentSessionServiceStub, count: int,
                         metadata: tuple[tuple[str, str], ...] = ()) -> list[str]:
    return [(await stub.Start(STAND_IN_START, metadata=metadata)).session.name for _ in range(count)]
