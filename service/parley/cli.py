"""The `parley` command: serve, health."""

from __future__ import annotations

import argparse
import asyncio
import sys

from parley import logs
from parley.settings import ServerSettings


def _serve(args: argparse.Namespace) -> int:
    from parley.server import serve

    settings = ServerSettings.from_namespace(args)
    logs.configure(settings.log_level)
    asyncio.run(serve(settings))
    return 0


def _health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(args.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"{args.address}: {exc.code().name} {exc.details()}")
            return 2
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Voice-agent session service over gRPC")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server (flags override PARLEY_* environment variables)")
    ServerSettings.add_arguments(serve)
    serve.set_defaults(run=_serve)
    health = commands.add_parser("health", help="check a server's health; exit 0 when SERVING")
    health.add_argument("--address", default="127.0.0.1:50051")
    health.add_argument("--service", default="", help="service name ('' = the whole server)")
    health.add_argument("--timeout", type=float, default=5.0)
    health.set_defaults(run=_health)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
