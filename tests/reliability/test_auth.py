"""Authentication, tenant isolation and transport security against a real server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from parley.api.auth import AuthConfigError, parse_tokens
from parley.api.tls import TlsConfigError
from parley.server import ParleyServer
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from parley.v1 import agent_session_service_pb2_grpc as pb_grpc
from parley.v1 import session_pb2
from tests.engine.conftest import STAND_IN_PROVIDERS
from tests.pki import Pki, make_pki
from tests.reliability.support import attach, outcome_of, stream_outcome

ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789ab"
START = pb.StartRequest(config=session_pb2.SessionConfig(providers=STAND_IN_PROVIDERS))


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def server_settings(server_settings: ServerSettings, tmp_path: Path) -> ServerSettings:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# token principal\n{ALICE} alice\n")
    return server_settings.replace(auth_tokens_file=str(tokens), auth_tokens=json.dumps({BOB: "bob"}))


async def test_missing_or_wrong_token_is_unauthenticated(stub) -> None:
    for metadata in ((), bearer("not-a-token-at-all-xx"), (("authorization", ALICE),), bearer(ALICE[:-1])):
        outcome = await outcome_of(stub.List(pb.ListRequest(), metadata=metadata))
        assert outcome.code is grpc.StatusCode.UNAUTHENTICATED and outcome.reason == "BAD_TOKEN", metadata
    stream = stub.StreamAudio()
    await stream.write(pb.StreamAudioRequest(config=pb.StreamConfig(session="sessions/x")))
    assert await stream.code() is grpc.StatusCode.UNAUTHENTICATED
    # a token from the file and one from the variable both work
    assert (await stub.List(pb.ListRequest(), metadata=bearer(ALICE))).sessions == []
    assert (await stub.List(pb.ListRequest(), metadata=bearer(BOB))).sessions == []


async def test_authentication_comes_before_decoding(channel) -> None:
    """Garbage without a token is UNAUTHENTICATED, not a hint about the request's shape."""
    garbage = bytes([0xFF, 0xFE, 0x07])
    for metadata, code in (((), grpc.StatusCode.UNAUTHENTICATED), (bearer(ALICE), grpc.StatusCode.INVALID_ARGUMENT)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.unary_unary("/parley.v1.AgentSessionService/Get")(garbage, metadata=metadata)
        assert err.value.code() is code


async def test_health_and_reflection_stay_open(channel) -> None:
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    services = [s.name async for r in reflect for s in r.list_services_response.service]
    assert "parley.v1.AgentSessionService" in services


async def test_another_principals_session_does_not_exist(stub) -> None:
    mine = (await stub.Start(START, metadata=bearer(ALICE))).session.name
    other = (await stub.Start(START, metadata=bearer(BOB))).session.name
    as_bob = bearer(BOB)
    calls = {
        "Get": stub.Get(pb.GetRequest(session=mine), metadata=as_bob),
        "Say": stub.Say(pb.SayRequest(session=mine, text="hello"), metadata=as_bob),
        "Interrupt": stub.Interrupt(pb.InterruptRequest(session=mine), metadata=as_bob),
        "WaitUtterance": stub.WaitUtterance(pb.WaitUtteranceRequest(session=mine, utterance_id="u1"), metadata=as_bob),
        "Close": stub.Close(pb.CloseRequest(session=mine), metadata=as_bob),
    }
    for method, call in calls.items():
        outcome = await outcome_of(call)
        assert (outcome.code, outcome.reason) == (grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND"), method
        # the same answer as for a session that never existed: nothing leaks
        assert outcome.message == f"{mine} not found"
    stream = await stream_outcome(stub, [pb.StreamAudioRequest(config=pb.StreamConfig(session=mine))], metadata=as_bob)
    assert (stream.code, stream.reason) == (grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")

    assert [s.name for s in (await stub.List(pb.ListRequest(), metadata=bearer(ALICE))).sessions] == [mine]
    assert [s.name for s in (await stub.List(pb.ListRequest(), metadata=as_bob)).sessions] == [other]
    # bob's attempts changed nothing: alice's session is open and untouched
    got = (await stub.Get(pb.GetRequest(session=mine), metadata=bearer(ALICE))).session
    assert got.status == session_pb2.SESSION_STATUS_ACTIVE and not got.utterances
    listening = attach(stub, mine, bearer(ALICE))
    await listening.wait_for(lambda: len(listening.frames) > 2)
    await listening.aclose()


def test_token_files_are_checked() -> None:
    assert parse_tokens(f"{ALICE} alice, {BOB} bob", "env") == {ALICE: "alice", BOB: "bob"}
    for bad in ("short alice", f"{ALICE}", f"{ALICE} alice\n{ALICE} bob", '{"x": 1}', "{not json", f"{ALICE} bad name"):
        with pytest.raises(AuthConfigError):
            parse_tokens(bad, "test")


# -- transport security ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def tls_server(pki: Pki, request: pytest.FixtureRequest) -> AsyncIterator[ParleyServer]:
    mutual = request.param
    settings = ServerSettings(host="127.0.0.1", port=0, log_level="WARNING", shutdown_grace=1.0,
                              allow_stand_in_providers=True, tls_cert=str(pki.server_cert), tls_key=str(pki.server_key),
                              tls_client_ca=str(pki.ca_file) if mutual else "")
    server = ParleyServer(settings)
    await server.start()
    yield server
    await server.stop()


async def _start_over(port: int, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    address = f"127.0.0.1:{port}"
    channel = (grpc.aio.secure_channel(address, credentials) if credentials is not None
               else grpc.aio.insecure_channel(address))
    async with channel:
        outcome = await outcome_of(pb_grpc.AgentSessionServiceStub(channel).Start(START, timeout=5))
    return outcome.code


@pytest.mark.parametrize("tls_server", [False], indirect=True)
async def test_tls_serves_only_tls(tls_server: ParleyServer, pki: Pki) -> None:
    assert await _start_over(tls_server.port, grpc.ssl_channel_credentials(root_certificates=pki.ca)) is grpc.StatusCode.OK
    assert await _start_over(tls_server.port, None) is grpc.StatusCode.UNAVAILABLE
    # a client that does not trust the server's CA refuses it
    stranger_ca = pki.stranger[1]
    assert await _start_over(tls_server.port, grpc.ssl_channel_credentials(root_certificates=stranger_ca)) \
        is grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("tls_server", [True], indirect=True)
async def test_mutual_tls_requires_a_client_certificate_from_the_ca(tls_server: ParleyServer, pki: Pki) -> None:
    def creds(client: tuple[bytes, bytes] | None) -> grpc.ChannelCredentials:
        if client is None:
            return grpc.ssl_channel_credentials(root_certificates=pki.ca)
        return grpc.ssl_channel_credentials(root_certificates=pki.ca, private_key=client[0],
                                            certificate_chain=client[1])

    assert await _start_over(tls_server.port, creds(pki.client)) is grpc.StatusCode.OK
    assert await _start_over(tls_server.port, creds(None)) is grpc.StatusCode.UNAVAILABLE
    assert await _start_over(tls_server.port, creds(pki.stranger)) is grpc.StatusCode.UNAVAILABLE
    assert await _start_over(tls_server.port, None) is grpc.StatusCode.UNAVAILABLE


def test_plaintext_is_refused_off_loopback_unless_asked(pki: Pki) -> None:
    with pytest.raises(TlsConfigError, match="refusing plaintext"):
        ParleyServer(ServerSettings(host="0.0.0.0", port=0))
    ParleyServer(ServerSettings(host="0.0.0.0", port=0, allow_insecure=True))  # asked for: allowed
    ParleyServer(ServerSettings(host="0.0.0.0", port=0, tls_cert=str(pki.server_cert), tls_key=str(pki.server_key)))
    for bad in (dict(tls_cert=str(pki.server_cert)), dict(tls_client_ca=str(pki.ca_file)),
                dict(tls_cert=str(pki.server_key), tls_key=str(pki.server_key) + ".missing")):
        with pytest.raises(TlsConfigError):
            ParleyServer(ServerSettings(port=0, **bad))
