"""The `parley` command: serve, talk, health, web, phone."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from importlib.metadata import version

from parley import logs
from parley import settings as server_settings

DEFAULT_ADDRESS = "127.0.0.1:50051"


def _address_help(what: str) -> str:
    return f"host:port of the Parley server {what} (env PARLEY_ADDRESS; default {DEFAULT_ADDRESS})"


def _serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT (N worker processes with --workers N); a setting the server cannot run
    with is one line on stderr and exit 2."""
    try:
        settings = server_settings.from_arguments(args)
        logs.configure(settings.log_level)
        if settings.workers:
            from parley.fleet.supervisor import serve_workers

            return serve_workers(settings)
        from parley.server import serve

        asyncio.run(serve(settings))
    except server_settings.StartupError as exc:
        print(f"parley serve: {exc}", file=sys.stderr)
        return 2
    return 0


def _health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(args.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"{args.address}: {exc.code().name} {exc.details()}", file=sys.stderr)
            return 2
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def _web(args: argparse.Namespace) -> int:
    from parley.web.serve import serve
    from parley.web.settings import WebSettings

    settings = WebSettings(address=args.address, token=args.token, host=args.host, port=args.port,
                           allowed_origins=tuple(args.allow_origin))
    logs.configure(args.log_level)
    serve(settings, args.log_level)
    return 0


def _talk(args: argparse.Namespace) -> int:
    import grpc

    from parley.talk import TalkOptions, talk

    options = TalkOptions(address=args.address, wav=args.wav, out=args.out, session=args.session,
                          instructions=args.instructions, rate=args.rate, timeout=args.timeout, token=args.token)
    try:
        return asyncio.run(talk(options))
    except grpc.aio.AioRpcError as exc:
        print(f"{args.address}: {exc.code().name} {exc.details()}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # unreadable input file, bad format
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: the session was closed on the way out
        print("interrupted", file=sys.stderr)
        return 130


def _phone(args: argparse.Namespace) -> int:
    from parley.phone.serve import serve, settings_from

    logs.configure(args.log_level)
    try:
        settings = settings_from(args)
    except (OSError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    asyncio.run(serve(settings, args.host, args.port, args.path, args.page))
    return 0


def _nginx_config(args: argparse.Namespace) -> int:
    from parley.fleet import nginx

    try:
        fleet: nginx.Listed | nginx.Discovered
        if args.discover:
            fleet = nginx.Discovered(args.discover, args.replica_host, args.ready_host, args.port, args.start_port,
                                     args.resolver)
        else:
            replicas = [nginx.Replica(*_replica_spec(spec)) for spec in args.replica]
            if args.workers:
                replicas += nginx.consecutive_replicas(args.host, args.port, args.start_port, args.workers,
                                                       args.replica_id)
            fleet = nginx.Listed(replicas)
        if bool(args.tls_cert) != bool(args.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        settings = nginx.NginxSettings(
            listen=args.listen, fleet=fleet, worker_processes=args.worker_processes, pid=args.pid,
            error_log=args.error_log, temp_dir=args.temp_dir, user=args.user,
            tls=nginx.ProxyTls(args.tls_cert, args.tls_key) if args.tls_cert else None,
            upstream_tls=nginx.UpstreamTls(args.upstream_tls_ca, args.upstream_tls_name) if args.upstream_tls_ca
            else None,
        )
    except ValueError as exc:
        print(f"nginx-config: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(nginx.render(settings))
    return 0


def _replica_spec(spec: str) -> tuple[str, str, str]:
    """"ID=HOST:PORT,HOST:START_PORT" -> (id, address, start address)."""
    replica, _, addresses = spec.partition("=")
    address, _, start_address = addresses.partition(",")
    if not (replica and address and start_address):
        raise ValueError(f"--replica {spec!r}: expected ID=HOST:PORT,HOST:START_PORT")
    return replica, address, start_address


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Voice-agent session service over gRPC")
    parser.add_argument("--version", action="version", version=f"parley {version('parley')}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the server (flags override PARLEY_* environment variables)",
        description="Run the server. Every setting is a flag and a PARLEY_* environment variable; the flag wins.")
    server_settings.add_arguments(serve)
    serve.set_defaults(run=_serve)
    talk = commands.add_parser(
        "talk", help="stream a WAV to a session as the caller and record the agent's reply",
        description="Stream an audio file to a session in real time as the caller's voice, print the "
                    "session's events, record the agent's audio until its reply has played, write it to --out.",
    )
    talk.add_argument("--wav", required=True, help="the caller's audio (WAV/FLAC/OGG, mono or stereo, 8..48 kHz)")
    talk.add_argument("--out", default="reply.wav", help="where to write the agent's audio (16-bit WAV)")
    talk.add_argument("--address", default=os.environ.get("PARLEY_ADDRESS", DEFAULT_ADDRESS),
                      help=_address_help("to talk to"))
    talk.add_argument("--token", default=os.environ.get("PARLEY_TOKEN", ""),
                      help="bearer token when the server has authentication on (env PARLEY_TOKEN)")
    talk.add_argument("--session", default="", help="talk to this session (left open) instead of starting one")
    talk.add_argument("--instructions", default="You are a helpful voice assistant. Answer in one sentence.",
                      help="system instructions of the session it starts")
    talk.add_argument("--rate", type=int, default=0, choices=(0, 8000, 16000, 24000, 48000),
                      help="sample rate of the recording (0: the session's output rate)")
    talk.add_argument("--timeout", type=float, default=60.0,
                      help="seconds to wait for the reply once the file was sent")
    talk.set_defaults(run=_talk)
    phone = commands.add_parser(
        "phone", help="bridge telephony media streams (WebSocket, G.711) onto Parley sessions",
        description="Serve the WebSocket media-stream protocol of telephony providers; each call gets a Parley "
                    "session (or joins the one its start.customParameters.session names) over gRPC.",
    )
    from parley.phone.serve import add_arguments as add_phone_arguments

    add_phone_arguments(phone)
    phone.set_defaults(run=_phone)
    health = commands.add_parser(
        "health", help="check a server's health; exit 0 when SERVING",
        description="Ask a server's grpc.health.v1 service; prints the status (errors go to stderr). "
                    "Exits 0 when SERVING, 1 when not, 2 when the server cannot be asked.",
    )
    health.add_argument("--address", default=os.environ.get("PARLEY_ADDRESS", DEFAULT_ADDRESS),
                        help=_address_help("to check"))
    health.add_argument("--service", default="", help="service name ('' = the whole server)")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")
    health.set_defaults(run=_health)
    web = commands.add_parser(
        "web", help="serve a page that talks to an agent in the browser (microphone, speaker, events)",
        description="Serve a web page and its WebSocket bridge on one port. The bridge is a gRPC client of "
                    "the Parley server at --address (same contract, same token); each browser tab is one "
                    "session, closed when the tab goes. Whoever can open the page acts with the token.",
    )
    web.add_argument("--address", default=os.environ.get("PARLEY_ADDRESS", DEFAULT_ADDRESS),
                     help=_address_help("the page talks to"))
    web.add_argument("--token", default=os.environ.get("PARLEY_TOKEN", ""),
                     help="bearer token when the server has authentication on (env PARLEY_TOKEN)")
    web.add_argument("--host", default="127.0.0.1",
                     help="where to serve the page (default 127.0.0.1: this machine only)")
    web.add_argument("--port", type=int, default=8080, help="port of the page and its WebSocket (default 8080)")
    web.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                     help="another origin whose pages may open the WebSocket (repeatable; the page's own always may)")
    web.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                     help="log level (JSON lines on stderr)")
    web.set_defaults(run=_web)
    proxy = commands.add_parser(
        "nginx-config", help="print the nginx configuration that puts replicas behind one address",
        description="Print an nginx configuration for Parley replicas: every call of a session reaches the "
                    "replica that owns it, Start goes to one that takes new sessions. Name the replicas with "
                    "--replica, the workers of `parley serve --workers N` with --workers, or a DNS naming "
                    "scheme (Kubernetes, compose) with --discover.",
    )
    proxy.add_argument("--listen", default="0.0.0.0:50051", help="host:port clients connect to")
    proxy.add_argument("--replica", action="append", default=[], metavar="ID=HOST:PORT,HOST:START_PORT",
                       help="a replica: its --replica-id, its --port address and its --start-port address")
    proxy.add_argument("--workers", type=int, default=0, help="the workers of `parley serve --workers N`")
    proxy.add_argument("--port", type=int, default=50061, help="the replicas' (first worker's) --port")
    proxy.add_argument("--start-port", type=int, default=50071, help="the replicas' (first worker's) --start-port")
    proxy.add_argument("--host", default="127.0.0.1", help="the workers' host")
    proxy.add_argument("--replica-id", default="", help="the workers' --replica-id")
    proxy.add_argument("--discover", default="", metavar="PATTERN",
                       help="find replicas in DNS: a regex every replica id matches, e.g. 'parley-[0-9]+'")
    proxy.add_argument("--replica-host", default="{replica}.parley",
                       help="with --discover: the host name of replica {replica}")
    proxy.add_argument("--ready-host", default="parley-ready",
                       help="with --discover: a name resolving to every replica that takes new sessions")
    proxy.add_argument("--resolver", default="127.0.0.11", help="with --discover: the DNS server nginx asks")
    proxy.add_argument("--worker-processes", default="auto")
    proxy.add_argument("--pid", default="/run/nginx.pid")
    proxy.add_argument("--error-log", default="stderr")
    proxy.add_argument("--temp-dir", default="", help="where nginx may spill request bodies")
    proxy.add_argument("--user", default="", help="the nginx workers' user")
    proxy.add_argument("--tls-cert", default="",
                       help="serve clients over TLS: certificate chain (PEM) on nginx's machine")
    proxy.add_argument("--tls-key", default="", help="with --tls-cert: its key (PEM)")
    proxy.add_argument("--upstream-tls-ca", default="",
                       help="the replicas serve TLS (their --tls-cert): the CA bundle nginx checks them with")
    proxy.add_argument("--upstream-tls-name", default="localhost",
                       help="with --upstream-tls-ca: the host name every replica's certificate carries")
    proxy.set_defaults(run=_nginx_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
