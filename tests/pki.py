"""A throwaway certificate authority for the TLS tests: a CA, a server certificate for localhost and 127.0.0.1,
a client it signed and a stranger another CA signed."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: bytes
    server_cert: Path
    server_key: Path
    ca_file: Path
    client: tuple[bytes, bytes]  # key, certificate chain, signed by `ca`
    stranger: tuple[bytes, bytes]  # a client signed by another CA


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, key, issuer: str, issuer_key, *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(folder: Path) -> Pki:
    """New keys and certificates; the server's and the CA's also as PEM files in `folder`."""
    ca_key, other_ca_key, server_key, client_key, stranger_key = (_key() for _ in range(5))
    ca = _cert("parley test CA", ca_key, "parley test CA", ca_key, ca=True)
    server = _cert("localhost", server_key, "parley test CA", ca_key, server=True)
    client = _cert("client", client_key, "parley test CA", ca_key)
    stranger = _cert("stranger", stranger_key, "other CA", other_ca_key)
    (folder / "server.pem").write_bytes(_pem(server))
    (folder / "server.key").write_bytes(_pem_key(server_key))
    (folder / "ca.pem").write_bytes(_pem(ca))
    return Pki(_pem(ca), folder / "server.pem", folder / "server.key", folder / "ca.pem",
               (_pem_key(client_key), _pem(client)), (_pem_key(stranger_key), _pem(stranger)))
