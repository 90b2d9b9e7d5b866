"""The Kubernetes/compose style of the proxy: replicas found in DNS, not listed in nginx's configuration.

Three `parley serve` processes on their own loopback addresses (127.0.0.21..)
with the same ports, as pods have; a DNS server on loopback stands in for the
cluster's, naming each replica and, under one name, those ready for sessions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from parley.fleet.nginx import Discovered, NginxSettings, render
from parley.fleet.routing import session_metadata
from parley.sessions.names import owner_replica
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.fleet.dns import DnsServer
from tests.fleet.support import STAND_IN_START, free_port_block, nginx_binary, serving, start_sessions, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")
PLAYED = session_pb2.UTTERANCE_STATE_PLAYED
READY = "parley-ready.test"


def ip_of(index: int) -> str:
    return f"127.0.0.{21 + index}"


@dataclass
class Cluster:
    directory: Path
    port: int
    start_port: int
    dns: DnsServer
    address: str = ""
    replicas: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    nginx: asyncio.subprocess.Process | None = None

    async def add_replica(self, index: int) -> str:
        """Start replica parley-{index} on its own address and publish it in DNS (ready for sessions)."""
        replica = f"parley-{index}"
        with open(self.directory / f"{replica}.log", "wb") as log:
            self.replicas[replica] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "parley.cli", "serve", "--host", ip_of(index), "--port", str(self.port),
                "--start-port", str(self.start_port), "--replica-id", replica, "--warm-up", "false",
                "--allow-stand-in-providers",
                stderr=log, env=dict(os.environ),
            )
        while not await serving(f"{ip_of(index)}:{self.port}"):
            assert self.replicas[replica].returncode is None, (self.directory / f"{replica}.log").read_text()
            await asyncio.sleep(0.1)
        self.dns.records[f"{replica}.test"] = [ip_of(index)]
        self.dns.records[READY] = [*self.dns.records.get(READY, []), ip_of(index)]
        return replica

    async def start_proxy(self) -> None:
        listen = free_port_block(1)
        self.address = f"127.0.0.1:{listen}"
        temp = self.directory / "nginx-temp"
        temp.mkdir()
        settings = NginxSettings(
            listen=self.address, worker_processes="1", pid=str(self.directory / "nginx.pid"), temp_dir=str(temp),
            user="root" if os.geteuid() == 0 else "",
            fleet=Discovered("parley-[0-9]+", "{replica}.test", READY, self.port, self.start_port,
                             f"127.0.0.1:{self.dns.port}", resolver_valid="1s"),
        )
        (self.directory / "nginx.conf").write_text(render(settings))
        log = self.directory / "nginx.log"
        self.nginx = await asyncio.create_subprocess_exec(
            nginx_binary(), "-c", str(self.directory / "nginx.conf"), "-p", str(self.directory), "-e", str(log),
            stderr=asyncio.subprocess.DEVNULL)
        host, _, port = self.address.rpartition(":")

        def listening() -> bool:
            assert self.nginx is not None and self.nginx.returncode is None, log.read_text()
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
            except OSError:
                return False
            return True

        await wait_until(listening, 30, "nginx to listen")

    async def stop(self) -> None:
        procs = [p for p in (self.nginx, *self.replicas.values()) if p is not None and p.returncode is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM if proc is self.nginx else signal.SIGINT)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    dns = DnsServer({})
    await dns.start()
    first = free_port_block(2)
    cluster = Cluster(Path(tmp_path_factory.mktemp("cluster")), first, first + 1, dns)
    try:
        for index in range(3):
            await cluster.add_replica(index)
        await cluster.start_proxy()
        yield cluster
    finally:
        await cluster.stop()
        dns.close()


async def test_calls_reach_the_replica_named_in_the_session(cluster: Cluster) -> None:
    async with grpc.aio.insecure_channel(cluster.address) as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        names: list[str] = []
        while {owner_replica(n) for n in names} != set(cluster.replicas):  # nginx picks one DNS answer at random
            assert len(names) < 60, f"Starts never reached all of {set(cluster.replicas)}"
            names += await start_sessions(stub, 1)
        for name in names:
            header = session_metadata(name)
            said = (await stub.Say(pb.SayRequest(session=name, text="hi"), metadata=header)).utterance
            waited = await stub.WaitUtterance(pb.WaitUtteranceRequest(session=name, utterance_id=said.id),
                                              metadata=header)
            assert waited.utterance.state == PLAYED
            await stub.Close(pb.CloseRequest(session=name), metadata=header)


async def test_a_new_replica_in_dns_takes_sessions_without_touching_the_proxy(cluster: Cluster) -> None:
    newcomer = await cluster.add_replica(3)
    async with grpc.aio.insecure_channel(cluster.address) as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        mine: list[str] = []
        for _ in range(200):  # once nginx's cached answer (1 s) expires, Starts reach it too
            name = (await stub.Start(STAND_IN_START)).session.name
            if owner_replica(name) == newcomer:
                mine.append(name)
                break
            await stub.Close(pb.CloseRequest(session=name), metadata=session_metadata(name))
            await asyncio.sleep(0.05)
        assert mine, f"no Start reached {newcomer}"
        got = (await stub.Get(pb.GetRequest(session=mine[0]), metadata=session_metadata(mine[0]))).session
        assert got.name == mine[0]
        await stub.Close(pb.CloseRequest(session=mine[0]), metadata=session_metadata(mine[0]))


async def test_a_draining_replica_gets_no_starts_and_serves_its_session_to_the_end(cluster: Cluster) -> None:
    draining = "parley-1"
    async with grpc.aio.insecure_channel(cluster.address) as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        names: list[str] = []
        while draining not in {owner_replica(n) for n in names}:  # nginx picks one DNS answer at random
            assert len(names) < 60, f"Starts never reached {draining}"
            names += await start_sessions(stub, 1)
        live = next(n for n in names if owner_replica(n) == draining)
        cluster.replicas[draining].send_signal(signal.SIGTERM)  # still in DNS: the proxy learns nothing of it
        ip = ip_of(int(draining.rsplit("-", 1)[1]))
        while await serving(f"{ip}:{cluster.port}"):
            await asyncio.sleep(0.05)
        fresh = await start_sessions(stub, 12)  # refused at its Start port, retried on the others
        assert draining not in {owner_replica(n) for n in fresh}
        header = session_metadata(live)
        said = (await stub.Say(pb.SayRequest(session=live, text="still here"), metadata=header)).utterance
        waited = await stub.WaitUtterance(pb.WaitUtteranceRequest(session=live, utterance_id=said.id), metadata=header)
        assert waited.utterance.state == PLAYED
        for name in names + fresh:
            await stub.Close(pb.CloseRequest(session=name), metadata=session_metadata(name))
        assert await asyncio.wait_for(cluster.replicas[draining].wait(), 30) == 0
