"""The nginx configuration that puts Parley replicas behind one gRPC address.

Routing (docs/architecture.md, "Scale-out"):

- A call carrying `x-parley-session: sessions/{replica}-{hex}` goes to that
  replica, whatever its health: a draining replica still serves its live
  sessions. Adding a replica changes no existing name's route.
- Start goes to a replica's Start-only listener (`--start-port`). A draining,
  full (every stream slot taken, `--max-streams`) or dead replica has closed
  it, so its connection is refused and nginx sends the Start to the next
  replica (`grpc_next_upstream error`): nothing reached the replica, so
  nothing runs twice. nginx's open-source build has no active health checks
  and cannot retry on a gRPC status; a refused connection is the signal it
  does act on. When no replica takes the Start, the client gets UNAVAILABLE
  saying so (`NO_REPLICA_MESSAGE`).
- Everything else (List, health, reflection) goes to any replica.

TLS, each hop on its own: `ProxyTls` makes nginx terminate TLS for the
clients (the usual case: replicas on a private network behind it), and
`UpstreamTls` makes it speak TLS to replicas that serve it (`--tls-cert`),
checking their certificates against a CA and one name they all carry.

Two ways to know the replicas:

- `Listed`: a fixed list (the workers of `parley serve --workers N`, or
  machines named by address); nginx resolves them once.
- `Discovered`: names in DNS (a Kubernetes StatefulSet, compose services):
  the replica id in the header becomes a host name, resolved while running,
  so a new replica needs no change here, and a restarted one is found at
  its new address.

`render()` is the only source of this text: `parley nginx-config` prints it,
the tests run it, and the files in deploy/ are its output.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from parley.fleet.routing import SESSION_HEADER
from parley.fleet.supervisor import worker_replica_id
from parley.sessions.names import check_replica_id, replica_prefix

START_METHOD = "/parley.v1.AgentSessionService/Start"
NO_REPLICA_MESSAGE = "no replica takes new sessions now (each is full, draining or down); retry later"
_NO_REPLICA = "@parley_no_replica"
_RANDOM_PART = "([0-9a-f]{16})?$"  # a session's random part; without it, the header names only the replica (List)


@dataclass(frozen=True)
class Replica:
    id: str  # its --replica-id
    address: str  # host:port of its --port: every call about its sessions
    start_address: str  # host:port of its --start-port

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a replica needs an id")
        check_replica_id(self.id)
        for address in (self.address, self.start_address):
            split_address(address)


@dataclass(frozen=True)
class Listed:
    """Replicas named one by one."""

    replicas: Sequence[Replica]

    def __post_init__(self) -> None:
        ids = [r.id for r in self.replicas]
        if not ids or len(set(ids)) != len(ids):
            raise ValueError(f"replica ids must be given and unique, got {ids}")


@dataclass(frozen=True)
class Discovered:
    """Replicas found in DNS: replica `r` answers at `replica_host.format(replica=r)`."""

    replica_pattern: str  # a regex every replica id matches, e.g. "parley-[0-9]+" (and no other name)
    replica_host: str  # e.g. "{replica}.parley.parley.svc.cluster.local"
    ready_host: str  # resolves to every replica that takes new sessions (Start, List, health)
    port: int  # every replica's --port
    start_port: int  # every replica's --start-port
    resolver: str  # the DNS server nginx asks while running
    resolver_valid: str = "5s"  # how long an answer is kept

    def __post_init__(self) -> None:
        if "{replica}" not in self.replica_host or not re.fullmatch(r"[A-Za-z0-9.{}-]+", self.replica_host):
            raise ValueError(f"replica_host {self.replica_host!r}: a host name containing {{replica}}")
        if re.search(r"[\s;{}\"']", self.replica_pattern):
            raise ValueError(f"replica_pattern {self.replica_pattern!r}: no spaces, quotes, braces or ';'")


@dataclass(frozen=True)
class ProxyTls:
    """nginx answers clients over TLS with this certificate chain and key (PEM files on nginx's machine)."""

    cert: str
    key: str

    def __post_init__(self) -> None:
        _check_path(self.cert, "the proxy's TLS certificate")
        _check_path(self.key, "the proxy's TLS key")


@dataclass(frozen=True)
class UpstreamTls:
    """nginx reaches the replicas over TLS and accepts a replica's certificate only if `ca` signed it for `name`."""

    ca: str
    name: str

    def __post_init__(self) -> None:
        _check_path(self.ca, "the replicas' CA bundle")
        if not re.fullmatch(r"[A-Za-z0-9.-]+", self.name):
            raise ValueError(f"{self.name!r}: the replicas' certificate name must be a host name")


@dataclass(frozen=True)
class NginxSettings:
    listen: str  # host:port clients connect to
    fleet: Listed | Discovered
    worker_processes: str = "auto"
    idle_timeout: str = "1h"  # a call may stay silent this long (a quiet WatchEvents) before nginx ends it
    pid: str = "/run/nginx.pid"
    error_log: str = "stderr"
    temp_dir: str = ""  # where nginx may spill request bodies ("": its compiled-in paths)
    user: str = ""  # the workers' user ("": nginx's default)
    tls: ProxyTls | None = None  # None: clients connect in plaintext
    upstream_tls: UpstreamTls | None = None  # None: the replicas are reached in plaintext

    def __post_init__(self) -> None:
        split_address(self.listen)


def render(settings: NginxSettings) -> str:
    fleet = settings.fleet
    lines = [
        "# nginx in front of Parley replicas: generated by `parley nginx-config`; change that, not this.",
        f"# A call about a session carries `{SESSION_HEADER}: <session name>` and reaches the replica",
        "# named in it; Start goes to a replica's Start-only port, which a draining or full replica closes.",
        "daemon off;",
        f"worker_processes {settings.worker_processes};",
        f"pid {settings.pid};",
        f"error_log {settings.error_log} notice;",
    ]
    if settings.user:
        lines.append(f"user {settings.user};")
    lines += [
        "",
        "events {",
        "    worker_connections 8192;",
        "}",
        "",
        "http {",
        "    access_log off;",
    ]
    if settings.temp_dir:
        lines += [f"    {kind}_temp_path {settings.temp_dir}/{kind};"
                  for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
    lines += [
        "    # gRPC calls are long and streamed: no size limit, long idle timeouts, many calls per connection",
        "    client_max_body_size 0;",
        f"    client_body_timeout {settings.idle_timeout};",
        f"    keepalive_timeout {settings.idle_timeout};",
        "    keepalive_requests 1000000;",
        "    http2_max_concurrent_streams 1000;",
        f"    grpc_read_timeout {settings.idle_timeout};",
        f"    grpc_send_timeout {settings.idle_timeout};",
        "    grpc_socket_keepalive on;",
    ]
    if settings.upstream_tls is not None:
        lines += [
            "    # the replicas serve TLS: their certificates must chain to this CA and name this host",
            f"    grpc_ssl_trusted_certificate {settings.upstream_tls.ca};",
            "    grpc_ssl_verify on;",
            f"    grpc_ssl_name {settings.upstream_tls.name};",
            "    grpc_ssl_server_name on;",
            "    grpc_ssl_protocols TLSv1.2 TLSv1.3;",
        ]
    lines.append("")
    lines += _discovered(fleet) if isinstance(fleet, Discovered) else _listed(fleet)
    scheme = "grpc" if settings.upstream_tls is None else "grpcs"
    lines += ["", "    server {"]
    if settings.tls is None:
        lines.append(f"        listen {settings.listen} http2;")
    else:
        lines += [
            f"        listen {settings.listen} ssl http2;",
            f"        ssl_certificate {settings.tls.cert};",
            f"        ssl_certificate_key {settings.tls.key};",
            "        ssl_protocols TLSv1.2 TLSv1.3;",
        ]
    lines += [
        f"        location = {START_METHOD} {{",
        "            # a refused connection (draining, full or gone) is retried on the next replica",
        "            grpc_next_upstream error timeout;",
    ]
    if isinstance(fleet, Discovered):
        lines += [f'            set $parley_start "{fleet.ready_host}:{fleet.start_port}";',
                  f"            grpc_pass {scheme}://$parley_start;"]
    else:
        lines.append(f"            grpc_pass {scheme}://parley_start;")
    lines += [
        f"            error_page 502 504 = {_NO_REPLICA};",
        "        }",
        f"        location {_NO_REPLICA} {{",
        "            # no replica took the connection: answer as gRPC does, not with a bare HTTP 502",
        "            default_type application/grpc;",
        "            add_header grpc-status 14 always;  # UNAVAILABLE",
        f'            add_header grpc-message "{NO_REPLICA_MESSAGE}" always;',
        "            add_header content-length 0 always;",
        "            return 204;",
        "        }",
        "        location / {",
        f"            grpc_pass {scheme}://$parley_route;",
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _listed(fleet: Listed) -> list[str]:
    lines = [f"    map $http_{SESSION_HEADER.replace('-', '_')} $parley_route {{", "        default parley_any;"]
    # replica ids are letters, digits and hyphens: nothing a regex treats specially
    lines += [f'        "~^{replica_prefix(r.id)}{_RANDOM_PART}" replica_{r.id};' for r in fleet.replicas]
    lines += ["    }", "", "    upstream parley_start {"]
    lines += [f"        server {r.start_address} max_fails=1 fail_timeout=5s;" for r in fleet.replicas]
    lines += ["    }", "", "    upstream parley_any {", "        least_conn;"]
    lines += [f"        server {r.address};" for r in fleet.replicas]
    lines += ["        keepalive 32;", "    }"]
    for r in fleet.replicas:
        lines += ["", f"    upstream replica_{r.id} {{", f"        server {r.address};", "        keepalive 8;",
                  "    }"]
    return lines


def _discovered(fleet: Discovered) -> list[str]:
    host = fleet.replica_host.replace("{replica}", "$parley_replica")
    return [
        f"    resolver {fleet.resolver} valid={fleet.resolver_valid} ipv6=off;",
        f"    map $http_{SESSION_HEADER.replace('-', '_')} $parley_route {{",
        f"        default {fleet.ready_host}:{fleet.port};",
        f'        "~^sessions/(?<parley_replica>{fleet.replica_pattern})-{_RANDOM_PART}" {host}:{fleet.port};',
        "    }",
    ]


def consecutive_replicas(host: str, port: int, start_port: int, count: int, replica_id: str = "") -> list[Replica]:
    """The workers of `parley serve --workers count --port port --start-port start_port` on `host`."""
    return [Replica(worker_replica_id(replica_id, i), f"{host}:{port + i}", f"{host}:{start_port + i}")
            for i in range(count)]


def _check_path(path: str, what: str) -> None:
    if not path or re.search(r"[\s;{}\"']", path):
        raise ValueError(f"{what}: {path!r} must be a path without spaces, quotes, braces or ';'")


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r}: expected host:port")
    bare = host.strip("[]")
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9.-]+", bare):
            raise ValueError(f"{address!r}: not an IP address or host name") from None
    return bare, int(port)
