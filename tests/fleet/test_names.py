"""Session names carry their replica; the proxy configuration refuses what it could not route."""

from __future__ import annotations

import pytest

from parley.fleet.nginx import Discovered, Listed, NginxSettings, Replica, render
from parley.server import ParleyServer
from parley.sessions.names import check_replica_id, new_session_name, owner_replica, replica_prefix
from parley.settings import ServerSettings
from parley.v1 import agent_session_service_pb2 as pb
from tests.fleet.support import STAND_IN_START


@pytest.fixture
def server_settings(server_settings: ServerSettings) -> ServerSettings:
    return server_settings.replace(replica_id="parley-7")


async def test_a_replica_puts_its_id_in_every_session_name(stub) -> None:
    name = (await stub.Start(STAND_IN_START)).session.name
    assert name.startswith(replica_prefix("parley-7")) and owner_replica(name) == "parley-7"
    assert (await stub.Get(pb.GetRequest(session=name))).session.name == name


def test_names_without_a_replica_are_unchanged() -> None:
    name = new_session_name()
    assert owner_replica(name) == "" and len(name) == len("sessions/") + 16


@pytest.mark.parametrize("bad", ["-a", "a-", "a_b", "a.b", "a" * 41, "a b", "sessions/x"])
def test_a_replica_id_a_proxy_could_not_route_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_replica_id(bad)
    with pytest.raises(ValueError):
        ParleyServer(ServerSettings(replica_id=bad, warm_up=False))


def test_the_proxy_configuration_refuses_what_it_cannot_route() -> None:
    with pytest.raises(ValueError):
        Listed([Replica("a", "127.0.0.1:1", "127.0.0.1:2"), Replica("a", "127.0.0.1:3", "127.0.0.1:4")])
    with pytest.raises(ValueError):
        Replica("a", "127.0.0.1", "127.0.0.1:2")  # no port
    with pytest.raises(ValueError):
        Discovered("parley-[0-9]+", "parley.example", "ready", 1, 2, "127.0.0.1")  # no {replica} in the host
    with pytest.raises(ValueError):
        Discovered("x; return 500", "{replica}.example", "ready", 1, 2, "127.0.0.1")
    text = render(NginxSettings("127.0.0.1:5", Listed([Replica("a-1", "127.0.0.1:1", "127.0.0.1:2")])))
    assert '"~^sessions/a-1-([0-9a-f]{16})?$" replica_a-1;' in text
