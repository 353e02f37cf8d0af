"""The signed @connections post path (service.clients.connections) against real local HTTP servers:
the request is boto3's to the byte where it matters (path, Host, X-Amz-Date, token, Authorization),
outcomes keep boto3-era semantics, connections are kept alive, TLS is verified."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials

from service.clients import connections as posting

FIXED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
ODD_ID = "L0SM9cOF/vHcC+Ihw=é.."  # every character class the path encoding must get right


Reply = tuple[int, dict[str, str], bytes]


class Sink:
    """A keep-alive HTTP/1.1 server that records requests and answers from a script."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.connections = 0
        self.script: list[Reply] = []
        self.default: Reply = (200, {}, b"")
        self.raw: Callable[[BaseHTTPRequestHandler], bool] | None = None
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                sink.connections += 1

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.requests.append((self.requestline, dict(self.headers), body))
                if sink.raw is not None and sink.raw(self):
                    return
                status, headers, payload = sink.script.pop(0) if sink.script else sink.default
                self.send_response(status)
                for name, value in {"Content-Length": str(len(payload)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}/live"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "session-token")  # botocore reads this name first
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setattr(posting, "backoff_seconds", lambda attempt: 0.0)  # retries without waiting
    posting.reset()
    yield
    posting.reset()


def fixed_signer(token: str | None = "session-token") -> posting.Signer:
    return posting.Signer(Credentials("AKIDTEST", "secret", token), "eu-west-1", clock=FIXED.timestamp)


def boto3_request(sink: Sink, token: str | None) -> tuple[str, dict[str, str], bytes]:
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=sink.url(),
        region_name="eu-west-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",  # noqa: S106
        aws_session_token=token,
    )
    # The service's functions sign with botocore's Python SigV4 (Lambda's boto3 has no awscrt);
    # where awscrt is installed (the release tasks need it for SigV4A) botocore would switch `v4`
    # to its CRT signer, whose headers differ in form, not in meaning.
    with (
        mock.patch("botocore.auth.get_current_datetime", return_value=FIXED),
        mock.patch.dict(botocore.auth.AUTH_TYPE_MAPS, {"v4": SigV4Auth}),
    ):
        client.post_to_connection(ConnectionId=ODD_ID, Data=b'{"type":"event"}')
    return sink.requests.pop()


# -- the request ------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["session-token", None])
def test_request_matches_boto3_post_to_connection(sink: Sink, token: str | None) -> None:
    line, theirs, body = boto3_request(sink, token)
    posting.Endpoint(sink.url(), fixed_signer(token)).post(ODD_ID, b'{"type":"event"}')
    our_line, ours, our_body = sink.requests.pop()
    assert our_line == line == "POST /live/@connections/L0SM9cOF%2FvHcC%2BIhw%3D%C3%A9.. HTTP/1.1"
    assert our_body == body
    for header in ("Host", "X-Amz-Date", "X-Amz-Security-Token", "Authorization", "Content-Length"):
        assert ours.get(header) == theirs.get(header), header
    assert ("X-Amz-Security-Token" in ours) == (token is not None)
    expected_signed = "host;x-amz-date;x-amz-security-token" if token else "host;x-amz-date"
    assert f"SignedHeaders={expected_signed}," in ours["Authorization"]
    assert "Credential=AKIDTEST/20260102/eu-west-1/execute-api/aws4_request" in ours["Authorization"]


def test_signature_is_botocores_for_the_same_request() -> None:
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/live/@connections/" + "Zm9v%3D"
    request = AWSRequest(method="POST", url=url, data=b"frame")
    with mock.patch("botocore.auth.get_current_datetime", return_value=FIXED):
        SigV4Auth(Credentials("AKIDTEST", "secret", "tok"), "execute-api", "eu-west-1").add_auth(request)
    ours = dict(
        posting.Signer(Credentials("AKIDTEST", "secret", "tok"), "eu-west-1", clock=FIXED.timestamp).headers(
            "abc123.execute-api.eu-west-1.amazonaws.com", "/live/@connections/Zm9v%3D", b"frame"
        )
    )
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]
    assert ours["X-Amz-Security-Token"] == "tok"


def test_host_header_keeps_non_default_ports_only() -> None:
    signer = fixed_signer()
    assert posting.Endpoint("https://ws.example.com/live", signer).host == "ws.example.com"
    assert posting.Endpoint("https://ws.example.com:443/live", signer).host == "ws.example.com"
    assert posting.Endpoint("http://127.0.0.1:8080/live/", signer).host == "127.0.0.1:8080"
    assert posting.Endpoint("http://127.0.0.1:8080/live/", signer).base_path == "/live"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/live", "not an http\\(s\\) URL"),
        ("https:///live", "not an http\\(s\\) URL"),
        ("https://example.com/live?x=1", "query or fragment"),
    ],
)
def test_bad_endpoints_are_refused_with_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        posting.post(url, "abc=", b"x")


def test_empty_connection_id_is_refused(sink: Sink) -> None:
    with pytest.raises(ValueError, match="connection id is empty"):
        posting.post(sink.url(), "", b"x")


class Rotating:
    """A credentials provider whose keys change when told (as a role's session does)."""

    def __init__(self) -> None:
        self.generation = 1

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        return ReadOnlyCredentials(
            f"AKID{self.generation}", f"secret{self.generation}", f"token{self.generation}"
        )


def test_rotated_credentials_are_used_from_the_next_second() -> None:
    now = [FIXED.timestamp()]
    provider = Rotating()
    signer = posting.Signer(provider, "eu-west-1", clock=lambda: now[0])
    first = dict(signer.headers("h", "/live/@connections/a", b""))
    provider.generation = 2
    now[0] += 1
    second = dict(signer.headers("h", "/live/@connections/a", b""))
    assert "Credential=AKID1/" in first["Authorization"] and first["X-Amz-Security-Token"] == "token1"
    assert "Credential=AKID2/" in second["Authorization"] and second["X-Amz-Security-Token"] == "token2"
    # And the signature is botocore's for the new key.
    request = AWSRequest(method="POST", url="http://h/live/@connections/a", data=b"")
    with mock.patch("botocore.auth.get_current_datetime", return_value=FIXED + datetime.timedelta(seconds=1)):
        SigV4Auth(provider.get_frozen_credentials(), "execute-api", "eu-west-1").add_auth(request)
    assert second["Authorization"] == request.headers["Authorization"]


def test_refreshable_credentials_are_refreshed_by_botocore() -> None:
    calls = []

    def refresh() -> dict[str, str]:
        calls.append(1)
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        return {
            "access_key": "AKIDNEW",
            "secret_key": "new",
            "token": "new-token",
            "expiry_time": expiry.isoformat(),
        }

    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)  # inside the mandatory window
    credentials = RefreshableCredentials.create_from_metadata(
        {"access_key": "AKIDOLD", "secret_key": "old", "token": "old-token", "expiry_time": soon.isoformat()},
        refresh_using=refresh,
        method="test",
    )
    headers = dict(posting.Signer(credentials, "eu-west-1").headers("h", "/live/@connections/a", b""))
    assert calls and "Credential=AKIDNEW/" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "new-token"


def test_signer_comes_from_the_default_botocore_session(sink: Sink) -> None:
    assert posting.post(sink.url(), "abc=", b"x") == ("sent", "")
    _, headers, _ = sink.requests[0]
    assert (
        "Credential=AKIDTEST/" in headers["Authorization"]
        and "/eu-west-1/execute-api/" in headers["Authorization"]
    )
    assert headers["X-Amz-Security-Token"] == "session-token"


def test_without_credentials_the_post_fails_like_boto3_did(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    posting.reset()
    assert posting.post(sink.url(), "abc=", b"x") == ("failed", "NoCredentialsError")
    assert sink.requests == []


# -- outcomes ---------------------------------------------------------------------------------


def error(status: int, code: str | None, body: dict[str, Any] | None = None) -> Reply:
    headers = {"Content-Type": "application/json"}
    if code:
        headers["x-amzn-ErrorType"] = code
    return status, headers, json.dumps(body or {"message": "no"}).encode()


def test_sent(sink: Sink) -> None:
    assert posting.post(sink.url(), "abc=", b"frame") == ("sent", "")
    assert sink.requests[0][2] == b"frame"


def test_gone_is_final(sink: Sink) -> None:
    sink.script = [error(410, "GoneException")]
    assert posting.post(sink.url(), "abc=", b"x") == ("gone", "GoneException")
    assert len(sink.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        error(429, "LimitExceededException"),
        error(429, None),
        error(400, "ThrottlingException"),
        error(500, "InternalServerErrorException"),
        error(503, None),
    ],
)
def test_throttling_and_server_errors_are_retried(sink: Sink, reply: Reply) -> None:
    sink.script = [reply, reply]
    assert posting.post(sink.url(), "abc=", b"x") == ("sent", "")
    assert len(sink.requests) == 3


def test_retries_stop_after_the_last_attempt_with_the_code(sink: Sink) -> None:
    sink.default = error(429, "LimitExceededException")
    assert posting.post(sink.url(), "abc=", b"x") == ("failed", "LimitExceededException")
    assert len(sink.requests) == posting.MAX_ATTEMPTS


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (error(403, "ForbiddenException"), "ForbiddenException"),
        (error(413, "PayloadTooLargeException:http://internal.amazon.com/"), "PayloadTooLargeException"),
        (error(400, None, {"code": "BadRequestException"}), "BadRequestException"),
        (error(400, None, {"__type": "com.amazonaws#ValidationException"}), "ValidationException"),
        (error(404, None), "404"),
    ],
)
def test_other_client_errors_fail_at_once_with_their_code(sink: Sink, reply: Reply, code: str) -> None:
    sink.script = [reply]
    assert posting.post(sink.url(), "abc=", b"x") == ("failed", code)
    assert len(sink.requests) == 1


def test_network_errors_are_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    assert posting.post(f"http://127.0.0.1:{port}/live", "abc=", b"x") == ("failed", "ConnectionRefusedError")


def test_a_dropped_connection_mid_response_is_retried(sink: Sink) -> None:
    drops = [1]

    def drop_once(handler: BaseHTTPRequestHandler) -> bool:
        if drops:
            drops.pop()
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")  # cut short
            handler.wfile.flush()
            handler.close_connection = True
            return True
        return False

    sink.raw = drop_once
    assert posting.post(sink.url(), "abc=", b"x") == ("sent", "")
    assert len(sink.requests) == 2


# -- connections ------------------------------------------------------------------------------


def test_posts_reuse_one_kept_alive_connection(sink: Sink) -> None:
    for i in range(20):
        assert posting.post(sink.url(), f"c{i}=", b"x") == ("sent", "")
    assert sink.connections == 1


def test_error_bodies_and_chunked_replies_keep_the_connection_usable(sink: Sink) -> None:
    def chunked(handler: BaseHTTPRequestHandler) -> bool:
        if len(sink.requests) == 1:
            handler.wfile.write(
                b"HTTP/1.1 403 Forbidden\r\nx-amzn-ErrorType: ForbiddenException\r\nTransfer-Encoding: chunked\r\n\r\n"
                b'5\r\n{"m":\r\n4\r\n"no"\r\n1\r\n}\r\n0\r\n\r\n'
            )
            return True
        return False

    sink.raw = chunked
    assert posting.post(sink.url(), "a=", b"x") == ("failed", "ForbiddenException")
    assert posting.post(sink.url(), "b=", b"x") == ("sent", "")
    assert sink.connections == 1


def test_connection_close_is_honoured(sink: Sink) -> None:
    sink.default = (200, {"Connection": "close"}, b"")
    for _ in range(3):
        assert posting.post(sink.url(), "a=", b"x") == ("sent", "")
    assert sink.connections == 3


def test_a_kept_alive_connection_closed_by_the_server_is_replaced(sink: Sink) -> None:
    def answer_then_hang_up(handler: BaseHTTPRequestHandler) -> bool:
        # As a server's idle timeout does: the reply said nothing about closing, the socket closes.
        handler.close_connection = True
        return False

    sink.raw = answer_then_hang_up
    assert posting.post(sink.url(), "a=", b"x") == ("sent", "")
    sink.raw = None
    assert posting.post(sink.url(), "b=", b"x") == ("sent", "")
    assert len(sink.requests) == 2  # the stale pooled connection cost no attempt and no back-off
    assert sink.connections == 2


def test_idle_connections_beyond_the_pool_size_are_closed(sink: Sink) -> None:
    endpoint = posting.endpoint(sink.url(), pool_size=2)
    barrier = threading.Barrier(4)

    def post() -> None:
        barrier.wait()
        endpoint.post("a=", b"x")

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(endpoint._idle) <= 2


# -- TLS --------------------------------------------------------------------------------------


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_sink(tmp_path: Path) -> Iterator[tuple[Sink, Path]]:
    cert, key = _certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Sink(tls=context)
    yield server, cert
    server.close()


def test_https_endpoints_verify_the_certificate_against_botocores_bundle(tls_sink: tuple[Sink, Path]) -> None:
    sink, _ = tls_sink
    outcome, reason = posting.post(sink.url("https", "localhost"), "a=", b"x")
    assert (outcome, reason) == ("failed", "SSLCertVerificationError")
    assert sink.requests == []


def test_https_endpoints_honour_aws_ca_bundle(
    tls_sink: tuple[Sink, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, cert = tls_sink
    monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
    for i in range(3):
        assert posting.post(sink.url("https", "localhost"), f"c{i}=", b"x") == ("sent", "")
    assert sink.connections == 1
    _, headers, _ = sink.requests[0]
    assert headers["Host"] == f"localhost:{sink.port}"
