"""A local stand-in for API Gateway's WebSocket API, serving the service's real handlers.

One WebSocket port serves every stage by path (`ws://127.0.0.1:<port>/live`,
`.../preview`, `.../canary`), as API Gateway serves
`wss://<api>.execute-api.<region>.amazonaws.com/<stage>`. Each stage carries the stage variable
`alias` (live -> `live`, preview and canary -> `green`), and every integration runs
`<function>:${stageVariables.alias}` through the LambdaRuntime, which picks a version by the
alias's weights and applies that version's configuration.

The edge (with `edge`, edge.py): every handshake first goes through the distribution's
viewer-request CloudFront Function, as it does on AWS, and reaches the stage named by the uri
the function returns: the connection canary's function sends a share of `/live` handshakes to
`/canary`. A connection keeps that stage for its life: its `$connect`, messages and
`$disconnect` run on the stage's alias and see it as `requestContext.stage`.

The callback endpoint: functions derive it from the request context as on AWS,
`https://{domainName}/{stage}` (service.logic.connections.callback_endpoint); `domainName` is the
@connections port, which speaks HTTPS with a local CA (tls.py) that the functions trust through
AWS_CA_BUNDLE. So every stage's connections are called back on their own stage, whichever
version serves them, with no per-stage variable in the functions' environment (a version has
one environment for every stage, as on AWS).

API Gateway behaviour kept: the REQUEST authorizer and then `$connect` run before the
handshake completes (401 when the authorizer fails with "Unauthorized", 403 on a Deny policy,
500 on an authorizer error, the `$connect` status code when it is not 2xx); route selection on
`$request.body.action` (a non-JSON frame or an action without a route goes to `$default`);
binary frames arrive base64-encoded with `isBase64Encoded`; an integration error sends
`{"message": "Internal server error", "connectionId", "requestId"}` to the client;
`$disconnect` runs after every close; messages over 128 KB close the connection with 1009;
10 minutes without a message from the client, or 2 hours in all, close it with 1001. The
@connections API is a separate HTTP port (see management.py). Each connection's messages are
handled in order; connections are handled concurrently (invocations run on a thread pool).

Metrics (with `recorder`): Lambda's per version (runtime.py), and API Gateway's per stage
(AWS/ApiGateway, dimensions ApiId and Stage): ConnectCount, MessageCount (client messages and
@connections posts), ClientError, IntegrationError, ExecutionError and IntegrationLatency.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from orchestrator.gateway.edge import EdgeFunction, EdgeOutcome, ViewerRequest
from orchestrator.gateway.management import Authorize, ManagementApi, PostResult
from orchestrator.gateway.metrics import ApiSample, MetricRecorder
from orchestrator.gateway.runtime import Invocation, LambdaRuntime
from orchestrator.gateway.sqs_poller import QueueBinding, SqsPoller
from orchestrator.gateway.tls import local_tls
from service import catalog

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 128 * 1024
POST_TIMEOUT_SECONDS = 5.0
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Stage:
    name: str
    alias: str


DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("live", "live"),
    Stage("preview", "green"),
    Stage("canary", "green"),
)

# (connection id, stage, route key, the invocation): every integration a connection ran.
InvocationObserver = Callable[[str, str, str, Invocation], None]


@dataclass(frozen=True)
class GatewayUrls:
    websocket: dict[str, str]
    management: dict[str, str]  # plain http, for the operator's and the tasks' boto3 clients
    # The https endpoint a function derives from its request context (and registers for fan-out).
    callback: dict[str, str] = field(default_factory=dict)


@dataclass
class _Connection:
    id: str
    stage: Stage
    connected_at_ms: int
    source_ip: str
    user_agent: str
    authorizer: dict[str, Any]
    opened: float = field(default_factory=time.monotonic)
    last_inbound: float = field(default_factory=time.monotonic)
    last_active_ms: int = 0
    ws: ServerConnection | None = None


def new_connection_id() -> str:
    # API Gateway's ids look like 'L0SM9cOFvHcCIhw=': 15 characters and a '='.
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(15)) + "="


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _allowed(policy: Any, method_arn: str) -> bool:
    """Deny wins; otherwise an Allow on execute-api:Invoke for the method is needed."""
    statements = ((policy or {}).get("policyDocument") or {}).get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    effects = set()
    for statement in statements:
        resources = statement.get("Resource")
        resources = [resources] if isinstance(resources, str) else resources or []
        if any(
            r in (method_arn, "*") or (r.endswith("*") and method_arn.startswith(r[:-1])) for r in resources
        ):
            effects.add(statement.get("Effect"))
    return "Allow" in effects and "Deny" not in effects


class Gateway:
    """Start with `start()` (returns the bound URLs), stop with `stop()`; runs in a background thread."""

    def __init__(
        self,
        runtime: LambdaRuntime,
        *,
        stages: Iterable[Stage] = DEFAULT_STAGES,
        sqs: Any = None,
        queue_bindings: Iterable[QueueBinding] = (),
        recorder: MetricRecorder | None = None,
        idle_timeout_seconds: float = 600.0,
        max_connection_seconds: float = 7200.0,
        api_id: str = "localws",
        account_id: str = "123456789012",
        region: str = "eu-west-1",
        invoke_workers: int = 64,
        poll_wait_seconds: int = 1,
        edge: EdgeFunction | None = None,
        observer: InvocationObserver | None = None,
        authorize_connections: Authorize | None = None,
    ) -> None:
        """`edge`: the distribution's viewer-request function, run on every handshake (None:
        clients reach the stages directly); `observer` is told of every integration a
        connection runs (tests, diagnostics); `authorize_connections` judges each `@connections`
        request's signer (see management.py; None: every request is served)."""
        self.runtime = runtime
        self.stages = {s.name: s for s in stages}
        self._routes = catalog.route_table()
        self._idle = idle_timeout_seconds
        self._max_age = max_connection_seconds
        self._api_id = api_id
        self._account = account_id
        self._region = region
        self._pool = ThreadPoolExecutor(max_workers=invoke_workers, thread_name_prefix="gateway-invoke")
        self._recorder = recorder
        bindings = list(queue_bindings)
        if bindings and sqs is None:
            raise ValueError("queue_bindings need an SQS client (sqs=...)")
        self.poller = (
            SqsPoller(sqs, runtime, bindings, region=region, wait_seconds=poll_wait_seconds)
            if bindings
            else None
        )
        self._tls = local_tls()
        self.management = ManagementApi(
            self, self.stages, tls=self._tls.server_context(), authorize=authorize_connections
        )
        self.edge = edge
        self._observer = observer
        self._conns: dict[str, _Connection] = {}
        self._pending: dict[ServerConnection, _Connection] = {}
        self._disconnects: set[asyncio.Task[None]] = set()
        # Set when the gateway stops: messages still queued on a connection are not routed any more.
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.urls: GatewayUrls | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> GatewayUrls:
        # The functions call back https://{domainName}/{stage}: they trust the local CA.
        self.runtime.trust_ca_bundle(str(self._tls.bundle_file))
        if self.edge is not None:
            self.edge.start()
        self.management.start()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="gateway-websocket", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self.management.stop()
            if self.edge is not None:
                self.edge.stop()
            self.runtime.trust_ca_bundle(None)
            raise RuntimeError(f"gateway failed to start: {failure[0]}") from failure[0]
        if self._recorder is not None:
            self._recorder.start()
        if self.poller is not None:
            self.poller.start()
        self.urls = GatewayUrls(
            websocket={name: f"ws://127.0.0.1:{self._port}/{name}" for name in self.stages},
            management={name: self.management.endpoint(name) for name in self.stages},
            callback={name: self.management.secure_endpoint(name) for name in self.stages},
        )
        return self.urls

    async def _open(self) -> None:
        self._server = await serve(
            self._serve,
            "127.0.0.1",
            0,
            process_request=self._handshake,
            max_size=MAX_MESSAGE_BYTES,
            ping_interval=None,  # API Gateway does not ping clients; it answers their pings
            compression=None,
            server_header="local-api-gateway",
        )
        self._port = int(next(iter(self._server.sockets)).getsockname()[1])

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()
        if self._loop is not None and self._thread is not None:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self.management.stop()
        self._pool.shutdown(wait=True)
        if self.edge is not None:
            self.edge.stop()
        if self._recorder is not None:
            self._recorder.stop()
        self.runtime.trust_ca_bundle(None)

    async def _close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close(close_connections=False)
        for conn in list(self._conns.values()):
            if conn.ws is not None:
                await conn.ws.close(1001, "Going away")
        if self._server is not None:
            await self._server.wait_closed()
        while self._disconnects:
            await asyncio.gather(*list(self._disconnects), return_exceptions=True)

    # -- integrations ------------------------------------------------------------------
    def _request_context(self, conn: _Connection, route: str, event_type: str) -> dict[str, Any]:
        now = time.time()
        return {
            "routeKey": route,
            "eventType": event_type,
            "extendedRequestId": uuid.uuid4().hex[:16] + "=",
            "requestTime": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "messageDirection": "IN",
            "stage": conn.stage.name,
            "connectedAt": conn.connected_at_ms,
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
            "requestId": uuid.uuid4().hex[:16] + "=",
            # The host of the @connections endpoint (on AWS the API's domain serves both).
            "domainName": self.management.domain_name,
            "connectionId": conn.id,
            "apiId": self._api_id,
            **({"authorizer": conn.authorizer} if conn.authorizer else {}),
        }

    def method_arn(self, stage: str, route: str = "$connect") -> str:
        return f"arn:aws:execute-api:{self._region}:{self._account}:{self._api_id}/{stage}/{route}"

    async def _invoke(
        self, key: str, conn: _Connection, event: dict[str, Any], route: str, *, integration: bool = True
    ) -> Invocation:
        """Run `key` on the connection's stage alias; `integration` False: the authorizer (not
        counted in the integration metrics, as API Gateway does not)."""
        call = functools.partial(self.runtime.invoke, key, conn.stage.alias, event)
        try:
            done = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except Exception:
            self._api_metric(conn.stage.name, "ExecutionError", 1.0)
            raise
        if integration:
            self._api_metric(conn.stage.name, "ExecutionError", 0.0)
            self._api_metric(conn.stage.name, "IntegrationError", 1.0 if done.failed else 0.0)
            self._api_metric(conn.stage.name, "IntegrationLatency", done.duration_ms)
        if self._observer is not None:
            self._observer(conn.id, conn.stage.name, route, done)
        return done

    def _api_metric(self, stage: str, metric: str, value: float) -> None:
        if self._recorder is not None:
            self._recorder.record_api(ApiSample(self._api_id, stage, metric, value))

    async def _edge(self, request: Request, source_ip: str) -> EdgeOutcome:
        assert self.edge is not None
        url = urlsplit(request.path)
        viewer = ViewerRequest(
            uri=url.path or "/",
            querystring=parse_qs(url.query, keep_blank_values=True),
            headers=list(request.headers.raw_items()),
            source_ip=source_ip,
        )
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.edge.viewer_request, viewer)

    # -- handshake: authorizer, then $connect ------------------------------------------
    async def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        source_ip = str(connection.remote_address[0]) if connection.remote_address else "127.0.0.1"
        path = url.path
        query = parse_qs(url.query, keep_blank_values=True)
        if self.edge is not None:
            # CloudFront's viewer-request function sees the handshake first and may send it elsewhere.
            edge = await self._edge(request, source_ip)
            if not edge.forwarded:
                return connection.respond(int(edge.status or 503), (edge.body or "") + "\n")
            path, query = edge.uri, dict(edge.querystring)
        stage = self.stages.get(path.strip("/"))
        if stage is None:
            return connection.respond(404, f"no stage at {path}; stages: {', '.join(sorted(self.stages))}\n")
        headers: Headers = request.headers
        conn = _Connection(
            id=new_connection_id(),
            stage=stage,
            connected_at_ms=int(time.time() * 1000),
            source_ip=source_ip,
            user_agent=headers.get("User-Agent", ""),
            authorizer={},
        )
        context = self._request_context(conn, "$connect", "CONNECT")
        stage_variables = {"alias": stage.alias}
        auth_event = {
            "type": "REQUEST",
            "methodArn": self.method_arn(stage.name),
            "headers": {k: v for k, v in headers.raw_items()},
            "multiValueHeaders": {k: headers.get_all(k) for k in headers},
            "queryStringParameters": {k: v[-1] for k, v in query.items()},
            "multiValueQueryStringParameters": query,
            "stageVariables": stage_variables,
            "requestContext": context,
        }
        auth = await self._invoke("authorizer", conn, auth_event, "$connect", integration=False)
        if auth.failed:
            if (auth.error or {}).get("errorMessage") == "Unauthorized":
                self._api_metric(stage.name, "ClientError", 1.0)
                return connection.respond(401, "Unauthorized\n")
            return connection.respond(500, "Internal server error\n")
        if not _allowed(auth.result, self.method_arn(stage.name)):
            self._api_metric(stage.name, "ClientError", 1.0)
            return connection.respond(403, "Forbidden\n")
        conn.authorizer = {
            "principalId": auth.result.get("principalId"),
            **(auth.result.get("context") or {}),
        }
        connect_event = {
            "headers": auth_event["headers"],
            "multiValueHeaders": auth_event["multiValueHeaders"],
            "queryStringParameters": auth_event["queryStringParameters"] or None,
            "multiValueQueryStringParameters": query or None,
            "stageVariables": stage_variables,
            "requestContext": self._request_context(conn, "$connect", "CONNECT"),
            "isBase64Encoded": False,
        }
        self._api_metric(stage.name, "ConnectCount", 1.0)
        result = await self._invoke("connect", conn, connect_event, "$connect")
        status = (result.result or {}).get("statusCode", 200) if isinstance(result.result, dict) else 200
        if result.failed:
            return connection.respond(500, "Internal server error\n")
        if int(status) >= 300:
            return connection.respond(int(status), "Connection refused\n")
        conn.last_active_ms = conn.connected_at_ms
        self._pending[connection] = conn
        return None

    # -- an open connection ------------------------------------------------------------
    async def _serve(self, ws: ServerConnection) -> None:
        conn = self._pending.pop(ws)
        conn.ws = ws
        conn.opened = conn.last_inbound = time.monotonic()
        self._conns[conn.id] = conn
        try:
            while True:
                now = time.monotonic()
                deadline = min(conn.last_inbound + self._idle, conn.opened + self._max_age)
                if now >= deadline:
                    await ws.close(1001, "Going away")
                    break
                try:
                    message = await asyncio.wait_for(ws.recv(), timeout=deadline - now)
                except TimeoutError:
                    continue
                except ConnectionClosed:
                    break
                if self._closing:
                    break
                conn.last_inbound = time.monotonic()
                conn.last_active_ms = int(time.time() * 1000)
                await self._route(conn, message)
        finally:
            self._conns.pop(conn.id, None)
            task = asyncio.create_task(self._disconnect(conn))
            self._disconnects.add(task)
            task.add_done_callback(self._disconnects.discard)

    def route_for(self, message: str | bytes) -> str:
        """`$request.body.action` route selection, falling back to `$default`."""
        if isinstance(message, str):
            try:
                body = json.loads(message)
            except ValueError:
                body = None
            action = body.get("action") if isinstance(body, dict) else None
            if isinstance(action, str) and action in self._routes and not action.startswith("$"):
                return action
        return "$default"

    async def _route(self, conn: _Connection, message: str | bytes) -> None:
        route = self.route_for(message)
        context = self._request_context(conn, route, "MESSAGE")
        context["messageId"] = uuid.uuid4().hex[:16] + "="
        binary = isinstance(message, bytes)
        event = {
            "requestContext": context,
            "body": base64.b64encode(message).decode() if isinstance(message, bytes) else message,
            "isBase64Encoded": binary,
            "stageVariables": {"alias": conn.stage.alias},
        }
        self._api_metric(conn.stage.name, "MessageCount", 1.0)
        key = self._routes.get(route)
        if key is None:
            self._api_metric(conn.stage.name, "ClientError", 1.0)
            await self._send_error(conn, "Forbidden", context["requestId"])
            return
        result = await self._invoke(key, conn, event, route)
        if result.failed:
            await self._send_error(conn, "Internal server error", context["requestId"])

    async def _send_error(self, conn: _Connection, message: str, request_id: str) -> None:
        if conn.ws is None:
            return
        try:
            await conn.ws.send(
                json.dumps({"message": message, "connectionId": conn.id, "requestId": request_id})
            )
        except ConnectionClosed:
            pass

    async def _disconnect(self, conn: _Connection) -> None:
        context = self._request_context(conn, "$disconnect", "DISCONNECT")
        ws = conn.ws
        context["disconnectStatusCode"] = ws.close_code if ws is not None else None
        context["disconnectReason"] = (ws.close_reason if ws is not None else "") or ""
        event = {
            "requestContext": context,
            "stageVariables": {"alias": conn.stage.alias},
            "isBase64Encoded": False,
        }
        result = await self._invoke("disconnect", conn, event, "$disconnect")
        if result.failed:
            log.warning("$disconnect of %s failed: %s", conn.id, result.error)

    # -- the @connections hub (called from the management API's threads) ----------------
    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=POST_TIMEOUT_SECONDS + 1)

    async def _post(self, connection_id: str, data: bytes) -> PostResult:
        conn = self._conns.get(connection_id)
        if conn is None or conn.ws is None:
            return "gone"
        if conn.ws.state is not State.OPEN:
            # Closing (either side started the close handshake): API Gateway answers 410 at once.
            # Waiting on the send would hold the caller up to the handshake's end, and a function
            # replying to a client that just left would time out retrying.
            return "gone"
        try:
            text = data.decode()
        except UnicodeDecodeError:
            text = None
        try:
            await asyncio.wait_for(conn.ws.send(text if text is not None else data), POST_TIMEOUT_SECONDS)
        except ConnectionClosed:
            return "gone"
        except TimeoutError:
            return "busy"
        conn.last_active_ms = int(time.time() * 1000)
        self._api_metric(conn.stage.name, "MessageCount", 1.0)
        return "ok"

    def post(self, connection_id: str, data: bytes) -> PostResult:
        try:
            result: PostResult = self._call(self._post(connection_id, data))
        except TimeoutError:
            return "busy"
        return result

    def describe(self, connection_id: str) -> dict[str, Any] | None:
        conn = self._conns.get(connection_id)
        if conn is None:
            return None
        return {
            "connectedAt": _iso(conn.connected_at_ms),
            "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
            "lastActiveAt": _iso(conn.last_active_ms or conn.connected_at_ms),
        }

    async def _drop(self, connection_id: str) -> bool:
        """DELETE @connections: API Gateway answers at once and closes the connection after; the
        close handshake (the client's answer, then `$disconnect`) does not hold up the caller."""
        conn = self._conns.get(connection_id)
        if conn is None or conn.ws is None or conn.ws.state is not State.OPEN:
            return False  # gone, or already closing (either side): 410, as for a post
        task = asyncio.create_task(conn.ws.close(1000, "Connection closed by the server"))
        self._disconnects.add(task)
        task.add_done_callback(self._disconnects.discard)
        return True

    def disconnect(self, connection_id: str) -> bool:
        return bool(self._call(self._drop(connection_id)))

    @property
    def ca_bundle(self) -> str:
        """The CA bundle (AWS_CA_BUNDLE) a client of the https callback endpoints needs."""
        return str(self._tls.bundle_file)

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    def stage_of(self, connection_id: str) -> str | None:
        """The stage an open connection is on (the edge may have chosen it), or None."""
        conn = self._conns.get(connection_id)
        return conn.stage.name if conn is not None else None
