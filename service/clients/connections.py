"""Posting frames to WebSocket clients through API Gateway's @connections API.

Each post is one SigV4-signed `POST <endpoint>/@connections/<id>` on a kept-alive HTTP/1.1
connection from a per-endpoint pool, the same request boto3's `apigatewaymanagementapi`
`post_to_connection` sends (path, Host, X-Amz-Date, X-Amz-Security-Token when there is a
session token, Authorization over host;x-amz-date[;x-amz-security-token] for `execute-api` in
the session's region). Retries are ours: 429/throttling and 5xx are retried with jittered
exponential back-off, as are network errors; 410 (GoneException) is final and reported so the
caller can drop the connection; any other 4xx fails with its error code.

Why not boto3 or urllib3 for the exchange: a fan-out posts thousands of small frames per event
and the function's CPU is the limit. On the 2-core benchmark machine (benchmarks/
bench_fanout_post.py, one thread) boto3's client costs about 2 ms of CPU per post and urllib3's
pool carrying the same signed request about 0.5 ms (http.client alone about 0.25 ms), mostly in
generic request building, two writes per request and email-based header parsing; this path
costs about 0.16 ms. The exchange has one fixed shape (one request, a small reply framed by
Content-Length or chunks), so it is written and read directly on the socket: one write per
request, a minimal HTTP/1.1 reader. Signing stays botocore's (`SigV4Auth`):
credentials come from a botocore session (refreshable credentials are re-read every second,
inside their refresh windows), and only the derivation of the signing key, which changes with
the date, region and secret, is kept between posts.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import botocore
import botocore.session
from botocore.auth import SigV4Auth
from botocore.exceptions import BotoCoreError, NoCredentialsError, NoRegionError
from botocore.httpsession import get_cert_path
from botocore.utils import normalize_url_path, percent_encode

PostOutcome = Literal["sent", "gone", "failed"]

THROTTLE_CODES = frozenset({"LimitExceededException", "TooManyRequestsException", "ThrottlingException"})
MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
SIGNING_SERVICE = "execute-api"  # apigatewaymanagementapi's signing name
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"  # botocore.auth.SIGV4_TIMESTAMP

# Limits of the response reader: @connections answers are a status line, a few headers and a
# short JSON body; anything far larger is not that API.
_MAX_LINE = 8 * 1024
_MAX_HEADERS = 100
_MAX_BODY = 1024 * 1024
_USER_AGENT = f"realtime-analytics-fanout Botocore/{botocore.__version__}"

_lock = threading.Lock()
_endpoints: dict[str, Endpoint] = {}
_signer: Signer | None = None
_rng = random.SystemRandom()


class HttpProtocolError(Exception):
    """The peer's answer is not HTTP/1.1 as this client reads it (the post is retried)."""


class ConnectionDropped(HttpProtocolError):
    """The connection closed before any byte of the response (a kept-alive connection timed out)."""


# --------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------


class _Stamped:
    """The part of botocore's AWSRequest that SigV4Auth's scope and string-to-sign read."""

    __slots__ = ("context",)

    def __init__(self, timestamp: str) -> None:
        self.context = {"timestamp": timestamp}


class _DaySigV4Auth(SigV4Auth):
    """botocore's SigV4 for one set of credentials on one day.

    SigV4Auth.signature derives the signing key from the secret, date, region and service on
    every call (four HMACs); here it is derived once, the same way, and kept for the day."""

    def __init__(self, credentials: Any, region: str, timestamp: str) -> None:
        super().__init__(credentials, SIGNING_SERVICE, region)
        self.date = timestamp[:8]
        k_date = self._sign(f"AWS4{credentials.secret_key}".encode(), self.date)
        k_region = self._sign(k_date, region)
        k_service = self._sign(k_region, SIGNING_SERVICE)
        self._signing_key = self._sign(k_service, "aws4_request")

    def signature(self, string_to_sign: str, request: Any) -> str:
        return str(self._sign(self._signing_key, string_to_sign, hex=True))


@dataclass(frozen=True)
class _Second:
    """What every post signed within one second shares."""

    epoch: int
    timestamp: str
    auth: _DaySigV4Auth
    token: str | None
    credential: str  # "<access key>/<date>/<region>/execute-api/aws4_request"


class Signer:
    """Signs @connections posts as boto3 would, with credentials from a botocore session.

    `credentials` is a botocore Credentials object (RefreshableCredentials included): frozen
    credentials are taken once per second, so a rotation is picked up within a second and a
    refresh happens in botocore's own advisory/mandatory windows. `clock` returns Unix seconds
    (tests fix it)."""

    def __init__(self, credentials: Any, region: str, clock: Callable[[], float] = time.time) -> None:
        if credentials is None:
            raise NoCredentialsError()
        if not region:
            raise NoRegionError()
        self._credentials = credentials
        self.region = region
        self._clock = clock
        self._second: _Second | None = None

    @classmethod
    def from_session(cls, session: botocore.session.Session | None = None) -> Signer:
        session = session or botocore.session.get_session()
        return cls(session.get_credentials(), session.get_config_variable("region"))

    def _current(self) -> _Second:
        epoch = int(self._clock())
        second = self._second
        if second is not None and second.epoch == epoch:
            return second
        frozen = self._credentials.get_frozen_credentials()
        timestamp = time.strftime(SIGV4_TIMESTAMP, time.gmtime(epoch))
        auth = second.auth if second is not None else None
        if auth is None or auth.date != timestamp[:8] or auth.credentials != frozen:
            auth = _DaySigV4Auth(frozen, self.region, timestamp)
        second = _Second(epoch, timestamp, auth, frozen.token or None, auth.scope(_Stamped(timestamp)))
        self._second = second  # one reference assignment: threads see the old or the new second
        return second

    def headers(self, host: str, path: str, body: bytes) -> list[tuple[str, str]]:
        """X-Amz-Date, [X-Amz-Security-Token,] Authorization for `POST <path>` on `host`.

        `path` is the request path as sent (the connection id percent-encoded); the canonical
        request is botocore's for that request: path normalised and encoded again, empty query,
        the signed headers in order, the body's SHA-256."""
        current = self._current()
        stamp = current.timestamp
        canonical_path = quote(normalize_url_path(path), safe="/~")
        if current.token is None:
            signed = "host;x-amz-date"
            canonical_headers = f"host:{host}\nx-amz-date:{stamp}\n"
        else:
            signed = "host;x-amz-date;x-amz-security-token"
            canonical_headers = f"host:{host}\nx-amz-date:{stamp}\nx-amz-security-token:{current.token}\n"
        canonical_request = (
            f"POST\n{canonical_path}\n\n{canonical_headers}\n{signed}\n{sha256(body).hexdigest()}"
        )
        request = _Stamped(stamp)
        signature = current.auth.signature(current.auth.string_to_sign(request, canonical_request), request)
        authorization = (
            f"AWS4-HMAC-SHA256 Credential={current.credential}, SignedHeaders={signed}, Signature={signature}"
        )
        if current.token is None:
            return [("X-Amz-Date", stamp), ("Authorization", authorization)]
        return [
            ("X-Amz-Date", stamp),
            ("X-Amz-Security-Token", current.token),
            ("Authorization", authorization),
        ]


# --------------------------------------------------------------------------------------------
# HTTP/1.1 on kept-alive connections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def error_code(self) -> str:
        """The error code as botocore's rest-json parser reads it: x-amzn-ErrorType, then the body."""
        code = self.headers.get("x-amzn-errortype")
        if code is None:
            try:
                parsed = json.loads(self.body) if self.body else {}
            except ValueError:
                parsed = {}
            if isinstance(parsed, dict):
                code = parsed.get("code", parsed.get("Code", parsed.get("__type")))
        if not isinstance(code, str) or not code:
            return str(self.status)
        return code.split(":", 1)[0].rsplit("#", 1)[-1]


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()

    def _line(self) -> bytes:
        line = self.reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise HttpProtocolError("response line too long")
        return line

    def _read(self, size: int) -> bytes:
        data = self.reader.read(size)
        if len(data) != size:
            raise HttpProtocolError(f"response body cut short ({len(data)} of {size} bytes)")
        return data

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self._line()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpProtocolError(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                while self._line() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > _MAX_BODY:
                raise HttpProtocolError("response body too large")
            parts.append(self._read(size))
            self._read(2)  # CRLF after the chunk

    def exchange(self, request: bytes) -> tuple[Response, bool]:
        """Send one request, read its response; returns it and whether the connection is reusable."""
        self.sock.sendall(request)
        line = self._line()
        if not line:
            raise ConnectionDropped("connection closed before the response")
        while True:
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
                raise HttpProtocolError(f"not an HTTP status line: {line[:60]!r}")
            version, status = parts[0], int(parts[1])
            headers: dict[str, str] = {}
            for _ in range(_MAX_HEADERS + 1):
                header = self._line()
                if header in (b"\r\n", b"\n"):
                    break
                if not header:
                    raise HttpProtocolError("connection closed inside the response headers")
                name, sep, value = header.partition(b":")
                if not sep:
                    raise HttpProtocolError(f"bad header line {header[:60]!r}")
                key = name.strip().lower().decode("latin-1")
                text = value.strip().decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            else:
                raise HttpProtocolError("too many response headers")
            if 100 <= status < 200:  # interim (100 Continue): the final response follows
                line = self._line()
                continue
            break
        keep = version == b"HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        if status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._chunked()
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise HttpProtocolError(f"bad Content-Length {headers['content-length']!r}") from None
            if not 0 <= length <= _MAX_BODY:
                raise HttpProtocolError(f"Content-Length {length} out of range")
            body = self._read(length) if length else b""
        else:  # framed by the end of the connection
            body = self.reader.read(_MAX_BODY)
            keep = False
        return Response(status, headers, body), keep


class Endpoint:
    """One callback endpoint (`https://<domain>/<stage>`): its pool of kept-alive connections.

    At most `pool_size` idle connections are kept; a thread takes one, or opens one when none
    is idle, and gives it back after the exchange."""

    def __init__(self, endpoint_url: str, signer: Signer, pool_size: int = 32) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"connections endpoint {endpoint_url!r} is not an http(s) URL with a host")
        if parts.query or parts.fragment:
            raise ValueError(f"connections endpoint {endpoint_url!r} must not have a query or fragment")
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        self.url = endpoint_url
        self.tls = parts.scheme == "https"
        self.hostname = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        # The Host header (and the signed host) as botocore derives it from the URL.
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self.host = host if parts.port in (None, 443 if self.tls else 80) else f"{host}:{parts.port}"
        self.base_path = parts.path.rstrip("/")
        self.pool_size = pool_size
        self._signer = signer
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._tls_context: ssl.SSLContext | None = None
        if self.tls:
            session = botocore.session.get_session()
            bundle = session.get_config_variable("ca_bundle") or get_cert_path(True)
            context = ssl.create_default_context(cafile=bundle)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._tls_context = context

    def path_for(self, connection_id: str) -> str:
        if not connection_id:
            raise ValueError("connection id is empty")
        # The uri label {connectionId} of the service model, encoded as botocore's serializer does.
        return f"{self.base_path}/@connections/{percent_encode(connection_id)}"

    def request(self, connection_id: str, data: bytes) -> bytes:
        path = self.path_for(connection_id)
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}",
            "Accept-Encoding: identity",
            f"User-Agent: {_USER_AGENT}",
        ]
        lines += [f"{name}: {value}" for name, value in self._signer.headers(self.host, path, data)]
        lines.append(f"Content-Length: {len(data)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data

    def _open(self) -> _Connection:
        sock = socket.create_connection((self.hostname, self.port), timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls_context is not None:
                sock = self._tls_context.wrap_socket(sock, server_hostname=self.hostname)
            sock.settimeout(READ_TIMEOUT_SECONDS)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _take(self) -> tuple[_Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._open(), False

    def _give_back(self, connection: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self.pool_size:
                self._idle.append(connection)
                return
        connection.close()

    def post(self, connection_id: str, data: bytes) -> Response:
        """One exchange; raises OSError or HttpProtocolError when there is no response.

        A kept-alive connection that the server closed in the meantime fails at once (reset,
        broken pipe, or closed before any answer): the request goes once more on a fresh
        connection, as urllib3 and http.client do with stale pooled connections."""
        request = self.request(connection_id, data)
        connection, reused = self._take()
        while True:
            try:
                response, keep = connection.exchange(request)
            except (ConnectionDropped, ConnectionError):
                connection.close()
                if not reused:
                    raise
                connection, reused = self._open(), False
                continue
            except BaseException:
                connection.close()
                raise
            if keep:
                self._give_back(connection)
            else:
                connection.close()
            return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


# --------------------------------------------------------------------------------------------
# The posting API of the service
# --------------------------------------------------------------------------------------------


def signer() -> Signer:
    """The container's signer (credentials and region of the default botocore session)."""
    global _signer
    with _lock:
        if _signer is None:
            _signer = Signer.from_session()
        return _signer


def endpoint(endpoint_url: str, pool_size: int = 32) -> Endpoint:
    found = _endpoints.get(endpoint_url)
    if found is not None:
        return found
    current = signer()
    with _lock:
        found = _endpoints.get(endpoint_url)
        if found is None:
            found = Endpoint(endpoint_url, current, pool_size)
            _endpoints[endpoint_url] = found
        return found


def backoff_seconds(attempt: int) -> float:
    """Full-jitter exponential back-off for attempt 1, 2, ..."""
    return _rng.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def post(endpoint_url: str, connection_id: str, data: bytes, pool_size: int = 32) -> tuple[PostOutcome, str]:
    """Send one frame; returns the outcome and, when not sent, the reason."""
    reason = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            response = endpoint(endpoint_url, pool_size).post(connection_id, data)
        except (OSError, HttpProtocolError, BotoCoreError) as exc:
            reason = type(exc).__name__
        else:
            if 200 <= response.status < 300:
                return "sent", ""
            if response.status == 410:
                return "gone", "GoneException"
            reason = response.error_code()
            if response.status != 429 and response.status < 500 and reason not in THROTTLE_CODES:
                return "failed", reason
        if attempt < MAX_ATTEMPTS:
            time.sleep(backoff_seconds(attempt))
    return "failed", reason


def reset() -> None:
    """Forget the signer (credentials, region) and close every pooled connection."""
    global _signer
    with _lock:
        endpoints = list(_endpoints.values())
        _endpoints.clear()
        _signer = None
    for found in endpoints:
        found.close()
