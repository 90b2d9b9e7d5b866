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
    """Serve until SIGTERM/SIGINT; a setting the server cannot run with is one line on stderr and exit 2."""
    from parley.server import serve

    try:
        settings = server_settings.from_arguments(args)
        logs.configure(settings.log_level)
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
    asyncio.run(serve(settings, args.host, args.port, args.path))
    return 0


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
