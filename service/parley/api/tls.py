"""Transport security: TLS and mutual TLS from certificate files, plaintext only where safe.

- `--tls-cert` and `--tls-key` (PEM) turn TLS on.
- `--tls-client-ca` (PEM) also requires every client to present a
  certificate signed by that CA (mutual TLS).
- Without TLS the server listens in plaintext only on a loopback address,
  unless `--allow-insecure` says plaintext on the network is intended
  (e.g. behind a TLS-terminating proxy).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import grpc

from parley.settings import ServerSettings, StartupError


class TlsConfigError(StartupError, ValueError):
    """The transport settings cannot be used; the server refuses to start."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """TLS credentials, or None for plaintext (checked to be allowed)."""
    s = settings
    if bool(s.tls_cert) != bool(s.tls_key):
        raise TlsConfigError("--tls-cert and --tls-key go together")
    if not s.tls_cert:
        if s.tls_client_ca:
            raise TlsConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        if not is_loopback(s.host) and not s.allow_insecure:
            raise TlsConfigError(
                f"refusing plaintext on {s.host!r}: give --tls-cert/--tls-key, listen on loopback, "
                "or pass --allow-insecure"
            )
        return None
    key, cert = _read(s.tls_key, "--tls-key"), _read(s.tls_cert, "--tls-cert")
    client_ca = _read(s.tls_client_ca, "--tls-client-ca") if s.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _read(path: str, flag: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"cannot read {flag} {path!r}: {exc.strerror}") from None
    if b"-----BEGIN" not in data:
        raise TlsConfigError(f"{flag} {path!r} is not a PEM file")
    return data
