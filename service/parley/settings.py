"""Server settings: one dataclass, filled from flags with environment fallbacks."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server process is configured with.

    Each field has a flag `--field-name` and an environment variable
    `PARLEY_FIELD_NAME`; the flag wins.
    """

    host: str = "127.0.0.1"
    port: int = 50051
    max_sessions: int = 1000
    session_idle_ttl: float = 600.0
    reap_interval: float = 1.0
    max_message_bytes: int = 4 * 1024 * 1024
    keepalive_time: float = 30.0
    keepalive_timeout: float = 10.0
    shutdown_grace: float = 5.0
    provider_threads: int = 0  # 0: twice the cores, 2..8
    log_level: str = "INFO"

    # telemetry over OTLP; empty: the standard OTEL_EXPORTER_OTLP_* / OTEL_SERVICE_NAME
    # variables decide, and with none of them set telemetry is off
    otel_endpoint: str = ""
    otel_protocol: str = ""  # grpc or http/protobuf
    otel_service_name: str = ""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for f in fields(cls):
            default = f.default
            env = os.environ.get(env_name(f.name))
            parser.add_argument(
                "--" + f.name.replace("_", "-"),
                type=type(default),
                default=type(default)(env) if env is not None else default,
                help=f"(env {env_name(f.name)}, default {default})",
            )

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> "ServerSettings":
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls)})


def env_name(field_name: str) -> str:
    return "PARLEY_" + field_name.upper()
