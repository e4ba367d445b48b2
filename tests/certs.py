"""Certificates for TLS tests, made on the spot: a CA, a server certificate for
127.0.0.1 and localhost, and a client certificate, all signed by the CA.

EC P-256 keys: generating them takes milliseconds, so every test module can
have its own fresh set and nothing is checked into the repository.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_PASSWORD = "s3cret-key"


@dataclass
class CertSet:
    """Paths of the PEM files of one generated set."""

    ca: Path
    server_cert: Path
    server_key: Path
    server_key_encrypted: Path  # the same key, encrypted with KEY_PASSWORD
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate from a CA the broker does not trust
    stranger_key: Path


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, subject_key, issuer, issuer_key, *, ca=False, server=False, client=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if ca:
        builder = builder.add_extension(
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
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if client:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path, certificate):
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path, key, password=None):
    encryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def make_certs(directory):
    """Write a fresh CertSet into `directory` and return it."""
    directory = Path(directory)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("nanomq_py test CA", ca_key, "nanomq_py test CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate("localhost", server_key, "nanomq_py test CA", ca_key, server=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate("test-client", client_key, "nanomq_py test CA", ca_key, client=True)
    other_ca_key = ec.generate_private_key(ec.SECP256R1())
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _certificate("stranger", stranger_key, "untrusted CA", other_ca_key, client=True)
    return CertSet(
        ca=_write_cert(directory / "ca.crt", ca),
        server_cert=_write_cert(directory / "server.crt", server),
        server_key=_write_key(directory / "server.key", server_key),
        server_key_encrypted=_write_key(directory / "server-encrypted.key", server_key, KEY_PASSWORD),
        client_cert=_write_cert(directory / "client.crt", client),
        client_key=_write_key(directory / "client.key", client_key),
        stranger_cert=_write_cert(directory / "stranger.crt", stranger),
        stranger_key=_write_key(directory / "stranger.key", stranger_key),
    )
