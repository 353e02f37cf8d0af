"""The @connections management API over HTTP, as boto3's `apigatewaymanagementapi` calls it.

With `endpoint_url=http://127.0.0.1:<port>/<stage>` boto3 sends (see botocore's service model)
  POST   /<stage>/@connections/<id>   body = the data   -> 200
  GET    /<stage>/@connections/<id>                     -> 200 {connectedAt, identity, lastActiveAt}
  DELETE /<stage>/@connections/<id>                     -> 204
and reads errors from the `x-amzn-ErrorType` header: GoneException (410), PayloadTooLargeException
(413), LimitExceededException (429), ForbiddenException (403). Requests are served on threads
(stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive so boto3's pooled connections are reused);
the hub they call is thread-safe.

The same port speaks HTTPS too (with `tls`, see tls.py): a connection whose first byte is a TLS
handshake record is wrapped, any other is plain HTTP. Functions reach it as they reach API
Gateway, at `https://{requestContext.domainName}/{requestContext.stage}`; the operator's
clients and the tasks keep the plain `endpoint(stage)`.

With an `authorize` callable (the sandbox passes one when IAM is enforced, see
`orchestrator.iam.enforcer.ConnectionsJudge`), each request's SigV4 access key is handed to it
with the method, stage and connection id; a denial is AWS's 403 `ForbiddenException` with the
access-denied message, and the hub is not called. A request without a SigV4 signature gets
AWS's 403 "Missing Authentication Token" then; keys that are no role's (the operator's) pass, as
they do at moto.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

MAX_POST_BYTES = 128 * 1024
TLS_HANDSHAKE_RECORD = 0x16  # the first byte of a TLS ClientHello
FIRST_BYTE_TIMEOUT_SECONDS = 10.0

PostResult = Literal["ok", "gone", "busy"]
# (access key id, method, stage, connection id) -> None when allowed, else AWS's denial message.
Authorize = Callable[[str, str, str, str], str | None]


class ConnectionHub(Protocol):
    def post(self, connection_id: str, data: bytes) -> PostResult: ...

    def describe(self, connection_id: str) -> dict[str, Any] | None: ...

    def disconnect(self, connection_id: str) -> bool: ...


def _error(kind: str, status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"x-amzn-ErrorType": kind}, json.dumps({"message": message}).encode()


def access_key_of(authorization: str | None) -> str | None:
    """The access key id of a SigV4 `Authorization` header (`... Credential=<key>/<scope>, ...`)."""
    if not authorization or not authorization.startswith("AWS4-HMAC-SHA256 "):
        return None
    for part in authorization[len("AWS4-HMAC-SHA256 ") :].split(","):
        name, _, value = part.strip().partition("=")
        if name == "Credential":
            return value.split("/", 1)[0] or None
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One buffered write per response (flushed by the base class) and no Nagle delay: a
    # fan-out sends thousands of small requests on each kept-alive connection.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # request logs would drown the sandbox's output

    def _target(self) -> tuple[str, str] | None:
        """(stage, connection id) of the request's path, or None."""
        parts = unquote(urlsplit(self.path).path).split("/")
        # ['', '<stage>', '@connections', '<id>']
        if len(parts) != 4 or parts[2] != "@connections" or not parts[3]:
            return None
        if parts[1] not in self.server.stages:
            return None
        return parts[1], parts[3]

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self._target()
        if target is None:
            self._send(*_error("ForbiddenException", 403, "Forbidden"))
            return
        stage, connection_id = target
        authorize = self.server.authorize
        if authorize is not None:
            access_key = access_key_of(self.headers.get("Authorization"))
            denial = (
                "Missing Authentication Token"
                if access_key is None
                else authorize(access_key, method, stage, connection_id)
            )
            if denial is not None:
                self._send(*_error("ForbiddenException", 403, denial))
                return
        hub = self.server.hub
        if method == "POST":
            if len(body) > MAX_POST_BYTES:
                self._send(
                    *_error("PayloadTooLargeException", 413, f"Message too long; max {MAX_POST_BYTES} bytes")
                )
                return
            result = hub.post(connection_id, body)
            if result == "ok":
                self._send(200, {}, b"")
            elif result == "gone":
                self._send(*_error("GoneException", 410, f"connection {connection_id} is gone"))
            else:
                self._send(*_error("LimitExceededException", 429, "client buffer is full"))
        elif method == "GET":
            info = hub.describe(connection_id)
            if info is None:
                self._send(*_error("GoneException", 410, f"connection {connection_id} is gone"))
            else:
                self._send(200, {}, json.dumps(info).encode())
        else:
            if hub.disconnect(connection_id):
                self._send(204, {}, b"")
            else:
                self._send(*_error("GoneException", 410, f"connection {connection_id} is gone"))

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("POST")

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")


def _starts_tls(connection: socket.socket) -> bool:
    connection.settimeout(FIRST_BYTE_TIMEOUT_SECONDS)
    try:
        first = connection.recv(1, socket.MSG_PEEK)
    except OSError:
        return False
    finally:
        connection.settimeout(None)
    return bool(first) and first[0] == TLS_HANDSHAKE_RECORD


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        hub: ConnectionHub,
        stages: Iterable[str],
        tls: ssl.SSLContext | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.hub = hub
        self.stages = frozenset(stages)
        self.tls = tls
        self.authorize = authorize

    def finish_request(self, request: Any, client_address: Any) -> None:
        # On the request's own thread: the TLS handshake does not hold up accepting others.
        if self.tls is None or not _starts_tls(request):
            super().finish_request(request, client_address)
            return
        try:
            secured = self.tls.wrap_socket(request, server_side=True)  # takes over the socket
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(secured, client_address, self)  # type: ignore[arg-type]
        finally:
            try:
                secured.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            secured.close()


class ManagementApi:
    """The HTTP server on 127.0.0.1 (ephemeral port unless given), in a background thread."""

    def __init__(
        self,
        hub: ConnectionHub,
        stages: Iterable[str],
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        self._server = _Server((host, port), hub, stages, tls, authorize)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def domain_name(self) -> str:
        """What API Gateway puts in requestContext.domainName: the host of the @connections URL."""
        return f"127.0.0.1:{self.port}"

    def endpoint(self, stage: str) -> str:
        """The `endpoint_url` boto3 needs for a stage."""
        return f"http://127.0.0.1:{self.port}/{stage}"

    def secure_endpoint(self, stage: str) -> str:
        """The stage's endpoint as a function derives it (https, when the server has `tls`)."""
        return f"https://{self.domain_name}/{stage}"

    def start(self) -> ManagementApi:
        # A short poll interval keeps stop() quick (shutdown waits for one poll).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="gateway-management",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
