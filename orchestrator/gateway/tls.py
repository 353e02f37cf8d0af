"""A local certificate authority for the gateway's `@connections` endpoint over HTTPS.

A function finds the callback endpoint of its connection as on AWS, from the request context:
`https://{domainName}/{stage}` (service.logic.connections.callback_endpoint). So that this URL
works locally for every stage, whichever version serves it, the management API also speaks TLS
(on the same port as plain HTTP; management.py tells them apart by the first byte), with a
server certificate for 127.0.0.1 issued by a CA made here, once per process. Functions trust it
through AWS_CA_BUNDLE, a bundle of the CAs they trusted before and this one, which is how
botocore (and the service's posting client, which reads botocore's `ca_bundle`) are told about a
private CA.
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

CA_BUNDLE_VARIABLE = "AWS_CA_BUNDLE"


@dataclass(frozen=True)
class LocalTls:
    directory: Path
    ca_file: Path  # the local CA alone
    bundle_file: Path  # the CAs trusted before (AWS_CA_BUNDLE or certifi's) and the local CA
    cert_file: Path  # the server certificate (127.0.0.1, localhost)
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _base_bundle() -> str:
    configured = os.environ.get(CA_BUNDLE_VARIABLE)
    if configured and Path(configured).is_file():
        return Path(configured).read_text(encoding="utf-8")
    try:
        import certifi

        return Path(certifi.where()).read_text(encoding="utf-8")
    except (ImportError, OSError):
        return ""


@functools.lru_cache(maxsize=1)
def local_tls() -> LocalTls:
    """This process's CA and server certificate (made on first use, removed at exit)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC) - timedelta(minutes=5)
    until = now + timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orchestrator sandbox local CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory = Path(tempfile.mkdtemp(prefix="gateway-tls-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    tls = LocalTls(
        directory=directory,
        ca_file=directory / "ca.pem",
        bundle_file=directory / "bundle.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
    )
    tls.ca_file.write_text(ca_pem, encoding="utf-8")
    base = _base_bundle()
    tls.bundle_file.write_text(f"{base.rstrip()}\n{ca_pem}" if base else ca_pem, encoding="utf-8")
    tls.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    tls.key_file.chmod(0o600)
    return tls
