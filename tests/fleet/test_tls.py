"""TLS on both hops of a fleet: the clients' to nginx and nginx's to the replicas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import numpy as np

from parley.fleet.routing import session_metadata
from parley.sessions.names import owner_replica
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import open_stream, rms
from tests.fleet.support import STAND_IN_START, Fleet, FleetTls, start_sessions
from tests.pki import make_pki

PLAYED = session_pb2.UTTERANCE_STATE_PLAYED


async def test_whole_calls_go_through_tls_at_the_proxy_and_to_every_replica(
        make_fleet: Callable[..., Awaitable[Fleet]], tmp_path: Path) -> None:
    fleet = await make_fleet(workers=2, tls=FleetTls(make_pki(tmp_path)))
    async with fleet.channel() as channel:
        stub = pb_grpc.AgentSessionServiceStub(channel)
        names = await start_sessions(stub, 4)
        assert {owner_replica(n) for n in names} == set(fleet.replica_ids)
        for name in names:
            header = session_metadata(name)
            stream = await open_stream(stub, name, metadata=header)
            said = (await stub.Say(pb.SayRequest(session=name, text="spoken over TLS"), metadata=header)).utterance
            waited = await stub.WaitUtterance(pb.WaitUtteranceRequest(session=name, utterance_id=said.id),
                                              metadata=header)
            assert waited.utterance.state == PLAYED
            speech = [f for f in stream.frames if f.utterance_id == said.id]
            assert speech and rms(np.frombuffer(b"".join(f.pcm for f in speech), dtype="<i2")) > 100
            await stub.Close(pb.CloseRequest(session=name), metadata=header)
            await stream.wait_for(lambda s=stream: s.of("session_closed"))
            assert stream.error is None

    async with grpc.aio.insecure_channel(fleet.address) as plaintext:  # the proxy speaks only TLS
        refused = await _start_code(pb_grpc.AgentSessionServiceStub(plaintext))
    assert refused is not grpc.StatusCode.OK


async def test_the_proxy_refuses_replicas_whose_certificate_names_another_host(
        make_fleet: Callable[..., Awaitable[Fleet]], tmp_path: Path) -> None:
    fleet = await make_fleet(workers=1, tls=FleetTls(make_pki(tmp_path), replica_name="parley.example"))
    async with fleet.channel() as channel:
        code = await _start_code(pb_grpc.AgentSessionServiceStub(channel))
    assert code is grpc.StatusCode.UNAVAILABLE
    assert "upstream SSL certificate does not match" in fleet.nginx_log.read_text(errors="replace")


async def _start_code(stub: pb_grpc.AgentSessionServiceStub) -> grpc.StatusCode:
    try:
        await stub.Start(STAND_IN_START, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK
