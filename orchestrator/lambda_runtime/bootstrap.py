"""The runtime inside a local Lambda worker: `python -I -S bootstrap.py ...` (standard library only).

It plays the part of Lambda's Python runtime interface client. `sys.path` holds only the
function's asset (`/var/task`), the layer directories (`/opt/python`), the runtime directory
(`/var/runtime`, boto3/botocore) and the interpreter's standard library: no repository, no
virtual environment, no PYTHONPATH. The handler named by `_HANDLER` is imported at start (the
cold start), then invocations arrive as length-prefixed JSON messages on dedicated file
descriptors; stdout and stderr are the function's log (what CloudWatch Logs would hold).

Two roles:
  worker <request fd> <response fd>   one execution environment (one invocation at a time)
  zygote <control fd>                 pre-imports the runtime and layer libraries (never the
                                      asset's own modules) and forks workers on request, so a
                                      cold start pays only for the function's own imports

Messages (parent -> worker): {"type": "invoke", "request_id", "event", "deadline" (epoch seconds,
real time: the code runs at real speed, so its timeout does too), "now" (the caller's virtual
epoch seconds when sent), "speed" (virtual seconds per real second),
"function_version", "invoked_function_arn", "log_stream_name", "trace_id", "clock"}; with
"clock": true the virtual clock is published to the function as LOCAL_VIRTUAL_CLOCK =
"<virtual epoch> <real epoch> <speed>" (the one hook the tasks' clock reads; see tasks.common).
Worker -> parent: {"type": "ready", "init_ms", "error"?} once, then per invocation
{"type": "result", "payload"} or {"type": "error", "payload": {errorType, errorMessage, ...}},
each with "duration_ms" and "max_rss_mb".
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import signal
import socket
import struct
import sys
import time
import traceback
from typing import Any

_HEADER = struct.Struct(">I")
CLOCK_VARIABLE = "LOCAL_VIRTUAL_CLOCK"
# Libraries a zygote may import before forking: what the Lambda runtime (/var/runtime) and the
# Powertools layer (/opt/python) provide. Never a module of the asset itself.
# Third-party packages an asset bundles itself (redis, websockets) are skipped when it ships them.
PRELOAD = (
    "asyncio",
    "boto3",
    "botocore.session",
    "botocore.client",
    "aws_lambda_powertools",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.tracing",
    "aws_lambda_powertools.metrics",
    "aws_xray_sdk.core",
    "pydantic",
    "jmespath",
    "urllib3",
    "redis",
    "redis.asyncio",
    "websockets",
)


# -- framing ----------------------------------------------------------------------------------
def read_message(fd: int) -> Any:
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _read_exact(fd, size)
    if body is None:
        return None
    return json.loads(body)


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def write_message(fd: int, message: Any) -> None:
    body = json.dumps(message, default=str).encode()
    data = _HEADER.pack(len(body)) + body
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# -- paths ------------------------------------------------------------------------------------
def set_path(front: list[str]) -> None:
    """sys.path = the given directories, then the standard library (nothing else)."""
    stdlib = [p for p in sys.path if p and "-packages" not in p]
    sys.path[:] = [p for p in front if p] + stdlib


def _layout_from_env() -> list[str]:
    layers = [p for p in os.environ.get("_LOCAL_LAYER_DIRS", "").split(os.pathsep) if p]
    return [os.environ["LAMBDA_TASK_ROOT"], *layers, os.environ.get("LAMBDA_RUNTIME_DIR", "")]


# -- the context object -----------------------------------------------------------------------
class LambdaContext:
    """The attributes of Lambda's context that handlers and Powertools read."""

    def __init__(self, message: dict[str, Any]) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = message.get("function_version") or os.environ.get(
            "AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"
        )
        self.invoked_function_arn = message.get("invoked_function_arn", "")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = message["request_id"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = message.get("log_stream_name", "")
        self.identity = None
        self.client_context = message.get("client_context")
        self._deadline = float(message["deadline"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


# -- the worker -------------------------------------------------------------------------------
def _error(exc: BaseException, error_type: str | None = None, message: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc) if message is None else message,
        "requestId": "",
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def load_handler() -> tuple[Any, dict[str, Any] | None]:
    """Import `_HANDLER` ("module.function") as Lambda's runtime does; errors as it names them."""
    spec = os.environ.get("_HANDLER", "")
    module_name, _, attribute = spec.rpartition(".")
    if not module_name:
        return None, {
            "errorType": "Runtime.MalformedHandlerName",
            "errorMessage": "Bad handler '" + spec + "': not enough values to unpack (expected 2, got 1)",
            "stackTrace": [],
        }
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        return None, {
            "errorType": "Runtime.ImportModuleError",
            "errorMessage": f"Unable to import module '{module_name}': {exc}",
            "stackTrace": [],
        }
    except SyntaxError as exc:
        return None, _error(
            exc, "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        )
    except Exception as exc:  # noqa: BLE001 - an init failure is reported, not raised
        return None, _error(exc)
    handler = getattr(module, attribute, None)
    if handler is None:
        return None, {
            "errorType": "Runtime.HandlerNotFound",
            "errorMessage": f"Handler '{attribute}' missing on module '{module_name}'",
            "stackTrace": [],
        }
    return handler, None


def _max_rss_mb() -> float:
    # The peak of this process image: /proc's VmHWM starts again at exec, while ru_maxrss keeps the
    # peak of the process that forked us (a large test runner or daemon) across execve.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def serve(request_fd: int, response_fd: int, started: float) -> int:
    """Import the handler, report ready, then answer invocations until the request pipe closes."""
    set_path(_layout_from_env())
    handler, init_error = load_handler()
    sys.stdout.flush()
    ready: dict[str, Any] = {
        "type": "ready",
        "init_ms": round((time.perf_counter() - started) * 1000, 1),
        "pid": os.getpid(),
        "max_rss_mb": round(_max_rss_mb(), 1),
    }
    if init_error is not None:
        ready["error"] = init_error
        print(f"[ERROR] {init_error['errorType']}: {init_error['errorMessage']}", file=sys.stderr, flush=True)
    write_message(response_fd, ready)
    if init_error is not None:
        return 1
    init_ms = ready["init_ms"]
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    while True:
        message = read_message(request_fd)
        if message is None or message.get("type") != "invoke":
            return 0
        request_id = message["request_id"]
        os.environ["_X_AMZN_TRACE_ID"] = message.get("trace_id", "")
        os.environ["AWS_LAMBDA_FUNCTION_VERSION"] = message.get("function_version") or version
        if message.get("clock"):
            virtual, speed = float(message.get("now", time.time())), float(message.get("speed", 1.0))
            os.environ[CLOCK_VARIABLE] = f"{virtual!r} {time.time()!r} {speed!r}"
        else:
            os.environ.pop(CLOCK_VARIABLE, None)
        print(
            f"START RequestId: {request_id} Version: {os.environ['AWS_LAMBDA_FUNCTION_VERSION']}", flush=True
        )
        began = time.perf_counter()
        reply: dict[str, Any]
        try:
            result = handler(message.get("event"), LambdaContext(message))
            try:
                reply = {"type": "result", "payload": json.loads(json.dumps(result))}
            except (TypeError, ValueError) as exc:
                reply = {
                    "type": "error",
                    "payload": {
                        "errorType": "Runtime.MarshalError",
                        "errorMessage": f"Unable to marshal response: {exc}",
                    },
                }
        except Exception as exc:  # noqa: BLE001 - every handler exception is the invocation's result
            reply = {"type": "error", "payload": {**_error(exc), "requestId": request_id}}
            traceback.print_exc()
        duration = (time.perf_counter() - began) * 1000
        rss = _max_rss_mb()
        sys.stdout.flush()
        sys.stderr.flush()
        print(f"END RequestId: {request_id}", flush=True)
        print(
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\tBilled Duration: {int(duration) + 1} ms\t"
            f"Memory Size: {os.environ.get('AWS_LAMBDA_FUNCTION_MEMORY_SIZE', '128')} MB\t"
            f"Max Memory Used: {int(rss)} MB" + (f"\tInit Duration: {init_ms:.2f} ms" if init_ms else ""),
            flush=True,
        )
        init_ms = 0
        reply.update(duration_ms=round(duration, 2), max_rss_mb=round(rss, 1))
        write_message(response_fd, reply)


# -- the zygote -------------------------------------------------------------------------------
def zygote(control_fd: int) -> int:
    """Pre-import the runtime/layer libraries, then fork one worker per spawn request.

    Request: {"env": {...}, "log": path} with two descriptors (request read end, response write
    end) passed alongside; the reply is {"pid": ...}. The asset directory is never on this
    process's path, so nothing of the function's own code is imported before the fork.
    """
    layers = [p for p in os.environ.get("_LOCAL_LAYER_DIRS", "").split(os.pathsep) if p]
    set_path([*layers, os.environ.get("LAMBDA_RUNTIME_DIR", "")])
    skip = set(filter(None, os.environ.get("_LOCAL_PRELOAD_SKIP", "").split(",")))
    for name in PRELOAD:
        if name.split(".")[0] in skip:
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped automatically
    control = socket.socket(fileno=control_fd)
    base_path = list(sys.path)
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, 1 << 20, 2)
        except OSError:
            return 0
        if not data:
            return 0
        request = json.loads(data)
        sys.stdout.flush()
        sys.stderr.flush()
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # the worker
            try:
                control.close()
                log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.close(log)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.environ.clear()
                os.environ.update(request["env"])
                sys.path[:] = base_path
                code = serve(fds[0], fds[1], started)
            except BaseException:  # noqa: BLE001 - the worker must never return into the zygote loop
                traceback.print_exc()
                code = 1
            os._exit(code)
        for fd in fds:
            os.close(fd)
        control.sendall(json.dumps({"pid": pid}).encode())


def main(argv: list[str]) -> int:
    started = time.perf_counter()
    if argv[:1] == ["zygote"]:
        return zygote(int(argv[1]))
    if argv[:1] == ["worker"]:
        return serve(int(argv[1]), int(argv[2]), started)
    print("usage: bootstrap.py worker <request fd> <response fd> | zygote <control fd>", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
