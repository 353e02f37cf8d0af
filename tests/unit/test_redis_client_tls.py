"""The shared Redis client over real TLS: a TLS-terminating proxy (Python's ssl + asyncio) in
front of the sandbox server, with a throwaway CA and server certificate made in the test."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws

from orchestrator.sandbox.redis_server import RedisServer
from service.redis_client import RedisConfigError, build_client, get_redis, reset_clients, settings_from_env


@dataclass
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(directory: Path, label: str) -> Pki:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{label} test CA"))
        .issuer_name(_name(f"{label} test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(
        directory / f"{label}-ca.pem", directory / f"{label}-server.pem", directory / f"{label}-server.key"
    )
    pki.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pki


@dataclass
class TlsProxy:
    """Terminates TLS on loopback and pipes the plaintext to the Redis server."""

    upstream_port: int
    context: ssl.SSLContext
    port: int = 0
    versions: list[str] = field(default_factory=list)
    handshake_failures: list[str] = field(default_factory=list)

    def __enter__(self) -> TlsProxy:
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(
            lambda loop, ctx: self.handshake_failures.append(str(ctx.get("exception")))
        )
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.versions.append(writer.get_extra_info("ssl_object").version())
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def server_context(pki: Pki, *, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version, context.maximum_version = minimum, maximum
    context.load_cert_chain(pki.cert_file, pki.key_file)
    return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "trusted")


@pytest.fixture
def tls13_proxy(redis_server: RedisServer, pki: Pki) -> Iterator[TlsProxy]:
    context = server_context(pki, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_3)
    with TlsProxy(redis_server.port, context) as proxy:
        yield proxy


@pytest.fixture
def tls12_only_proxy(redis_server: RedisServer, pki: Pki) -> Iterator[TlsProxy]:
    context = server_context(pki, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2)
    with TlsProxy(redis_server.port, context) as proxy:
        yield proxy


def tls_env(port: int, ca_file: Path, host: str = "127.0.0.1", **extra: str) -> dict[str, str]:
    return {
        "REDIS_HOST": host,
        "REDIS_PORT": str(port),
        "REDIS_TLS": "true",
        "REDIS_CA_FILE": str(ca_file),
        "REDIS_TIMEOUT_SECONDS": "2",
        **extra,
    }


def test_connects_through_a_tls13_proxy_and_negotiates_tls13(
    tls13_proxy: TlsProxy, pki: Pki, redis_url: str
) -> None:
    client = build_client(settings_from_env(tls_env(tls13_proxy.port, pki.ca_file)))
    try:
        assert client.ping() is True
        client.set("tls:probe", "through the proxy")
        assert redis.Redis.from_url(redis_url).get("tls:probe") == b"through the proxy"
    finally:
        client.close()
    assert tls13_proxy.versions and set(tls13_proxy.versions) == {"TLSv1.3"}


def test_refuses_a_tls12_only_proxy(tls12_only_proxy: TlsProxy, pki: Pki) -> None:
    # Control: the proxy works for a client that accepts TLS 1.2, so the version is the only reason.
    lenient = redis.Redis(
        host="127.0.0.1",
        port=tls12_only_proxy.port,
        ssl=True,
        ssl_ca_certs=str(pki.ca_file),
        ssl_min_version=ssl.TLSVersion.TLSv1_2,
    )
    assert lenient.ping() is True
    lenient.close()
    assert tls12_only_proxy.versions == ["TLSv1.2"]

    client = build_client(settings_from_env(tls_env(tls12_only_proxy.port, pki.ca_file)))
    with pytest.raises(redis.ConnectionError, match=r"SSL"):
        client.ping()
    client.close()
    assert tls12_only_proxy.versions == ["TLSv1.2"]  # no further session was established


def test_refuses_a_certificate_from_an_unknown_ca(tls13_proxy: TlsProxy, tmp_path: Path) -> None:
    rogue = make_pki(tmp_path, "rogue")
    client = build_client(settings_from_env(tls_env(tls13_proxy.port, rogue.ca_file)))
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        client.ping()
    client.close()
    assert tls13_proxy.versions == []


def test_refuses_a_certificate_for_another_host(tls13_proxy: TlsProxy, pki: Pki) -> None:
    # 127.0.0.2 is loopback too, but the certificate names only localhost and 127.0.0.1.
    client = build_client(settings_from_env(tls_env(tls13_proxy.port, pki.ca_file, host="127.0.0.2")))
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED|mismatch|Connection refused"):
        client.ping()
    client.close()


def test_auth_token_comes_from_secrets_manager_and_follows_rotation(pki: Pki) -> None:
    with RedisServer() as server, mock_aws():
        admin = redis.Redis.from_url(server.url)
        admin.config_set("requirepass", "first-token")
        secrets = boto3.client("secretsmanager")
        arn = secrets.create_secret(Name="cache-auth", SecretString=json.dumps({"token": "first-token"}))[
            "ARN"
        ]
        context = server_context(pki, minimum=ssl.TLSVersion.TLSv1_3, maximum=ssl.TLSVersion.TLSv1_3)
        with TlsProxy(server.port, context) as proxy:
            env = tls_env(
                proxy.port, pki.ca_file, REDIS_AUTH_SECRET_ARN=arn, REDIS_AUTH_CACHE_SECONDS="0.001"
            )
            client = build_client(settings_from_env(env))
            assert client.ping() is True
            # Rotation: the server and the secret change; the next connection authenticates with the new token.
            redis.Redis(host="127.0.0.1", port=server.port, password="first-token").config_set(
                "requirepass", "second-token"
            )
            secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"token": "second-token"}))
            client.connection_pool.disconnect()
            assert client.ping() is True
            client.close()


def test_secret_without_a_token_field_is_named(pki: Pki) -> None:
    with RedisServer() as server, mock_aws():
        arn = boto3.client("secretsmanager").create_secret(
            Name="bad", SecretString=json.dumps({"user": "x"})
        )["ARN"]
        with TlsProxy(
            server.port, server_context(pki, minimum=ssl.TLSVersion.TLSv1_3, maximum=ssl.TLSVersion.TLSv1_3)
        ) as proxy:
            client = build_client(
                settings_from_env(tls_env(proxy.port, pki.ca_file, REDIS_AUTH_SECRET_ARN=arn))
            )
            with pytest.raises(RedisConfigError, match="has no 'token' field"):
                client.ping()
            client.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set REDIS_URL, or REDIS_HOST"),
        (
            {"REDIS_HOST": "cache.internal", "REDIS_TLS": "false"},
            "TLS is required for REDIS_HOST cache.internal",
        ),
        ({"REDIS_URL": "redis://cache.internal:6379/0"}, "plaintext Redis is allowed on loopback only"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "scheme must be redis, rediss or unix"),
        ({"REDIS_HOST": "h", "REDIS_PORT": "six"}, "REDIS_PORT must be an integer"),
        (
            {"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_TIMEOUT_SECONDS": "0"},
            "REDIS_TIMEOUT_SECONDS must be positive",
        ),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(RedisConfigError, match=message):
        settings_from_env(env)


def test_rediss_urls_get_the_tls13_floor_and_verification() -> None:
    client = build_client(settings_from_env({"REDIS_URL": "rediss://cache.example.com:6379/0"}))
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_min_version"] == ssl.TLSVersion.TLSv1_3
    assert kwargs["ssl_cert_reqs"] == ssl.CERT_REQUIRED and kwargs["ssl_check_hostname"] is True
    client.close()


def test_clients_are_shared_per_settings(redis_url: str) -> None:
    reset_clients()
    try:
        env = {"REDIS_URL": redis_url}
        assert get_redis(env) is get_redis(dict(env))
        assert get_redis({"REDIS_URL": redis_url, "REDIS_TIMEOUT_SECONDS": "3"}) is not get_redis(env)
        assert get_redis(env).ping() is True
    finally:
        reset_clients()
