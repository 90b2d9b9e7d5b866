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
    # security: bearer tokens (file of "token principal" lines or a JSON object;
    # PARLEY_AUTH_TOKENS holds the same text), TLS, and plaintext off loopback
    auth_tokens_file: str = ""
    auth_tokens: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    allow_insecure: bool = False
    # limits (each error names its field)
    max_sessions_per_principal: int = 250  # one tenant may not take the whole server
    max_text_chars: int = 4000
    max_tools: int = 64
    max_chunk_bytes: int = 64 * 1024
    max_requests_per_second: float = 50.0
    request_burst: int = 100
    max_subscribers: int = 16
    max_queued_utterances: int = 32
    stream_frame_buffer: int = 50
    provider_stall_seconds: float = 30.0
    audio_dir: str = ""  # layer files clients may name; "" allows builtin: sounds only
    max_layer_file_bytes: int = 20 * 1024 * 1024
    # telemetry over OTLP; empty: the standard OTEL_EXPORTER_OTLP_* / OTEL_SERVICE_NAME
    # variables decide, and with none of them set telemetry is off
    otel_endpoint: str = ""
    otel_protocol: str = ""  # grpc or http/protobuf
    otel_service_name: str = ""
    # a stdio MCP server runs a command on this host: clients may name one only when this is on
    allow_mcp_stdio: bool = False
    warm_up: bool = True  # `parley serve` loads the default models before serving, not on the first call

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for f in fields(cls):
            default = f.default
            env = os.environ.get(env_name(f.name))
            parse = _parse_bool if isinstance(default, bool) else type(default)
            parser.add_argument(
                "--" + f.name.replace("_", "-"),
                type=parse,
                default=parse(env) if env is not None else default,
                help=f"(env {env_name(f.name)}, default {default})",
                **({"nargs": "?", "const": True} if isinstance(default, bool) else {}),
            )

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> ServerSettings:
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls)})


def env_name(field_name: str) -> str:
    return "PARLEY_" + field_name.upper()


def _parse_bool(text: str) -> bool:
    """"1/true/yes/on" or "0/false/no/off" (a bare `--flag` means true)."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")
