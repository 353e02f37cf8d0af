"""Lambda functions: the registry the engine routes Lambda tasks to.

A function runs in-process (a handler registered with `register`) or in a worker process from
its own asset (`register_worker`: see orchestrator.lambda_runtime), with the same invoke path.
A handler is any `callable(event, context)`. Its return value becomes the invocation payload;
an exception becomes Lambda's `FunctionError: Unhandled` payload (`errorType` = the exception's
class name), so Retry/Catch clauses that name the error route exactly as on AWS. A handler that
raises `botocore.exceptions.ClientError` simulates a failure of the Invoke API itself
(throttling, service errors), which Step Functions reports as `Lambda.<Code>`.
"""

from __future__ import annotations

import json
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from orchestrator.engine.clock import VirtualClock

if TYPE_CHECKING:
    from orchestrator.lambda_runtime import FunctionPool

Handler = Callable[[Any, "LambdaContext"], Any]


def invoke_error(code: str, message: str = "", status: int = 429) -> ClientError:
    """A Lambda Invoke API error as boto3 raises it, e.g. `invoke_error("TooManyRequestsException")`.

    Raise it from a handler to make the invocation itself fail; the state machine sees
    `Lambda.<code>` (the errors CDK's LambdaInvoke retries by default are service errors).
    """
    return ClientError(
        {
            "Error": {"Code": code, "Message": message or code},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": str(uuid.uuid4())},
        },
        "Invoke",
    )


@dataclass
class LambdaContext:
    """The `context` argument a Python Lambda handler receives (the attributes Powertools reads)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    clock: VirtualClock
    deadline: float  # virtual epoch seconds at which the function times out
    client_context: Any = None
    identity: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.clock.time()) * 1000))


class FunctionErrorPayload(Exception):  # noqa: N818 - it carries Lambda's payload, it is not an error of ours
    """A worker's error object (`errorType`, `errorMessage` ...), passed through as Lambda reports it."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(f"{payload.get('errorType')}: {payload.get('errorMessage')}")
        self.payload = payload


def worker_handler(pool: FunctionPool, *, publish_clock: bool = False) -> Handler:
    """A handler that runs each invocation in one of `pool`'s worker processes.

    The worker is killed when the function's timeout has passed in real time since a ready
    worker took the invocation (its code runs at real speed, whatever the clock's speed; a cold
    start's init does not count, as on AWS). With `publish_clock` the function's own clock
    (tasks.common.utc_now) follows the engine's virtual clock.
    """

    def run(event: Any, context: LambdaContext) -> Any:
        clock = context.clock
        outcome = pool.invoke(
            event,
            clock=clock.time,
            speed=clock.speed,
            invoked_function_arn=context.invoked_function_arn,
            publish_clock=publish_clock,
            request_id=context.aws_request_id,
        )
        if outcome.error:
            raise FunctionErrorPayload(dict(outcome.payload))
        return outcome.payload

    run.__name__ = f"worker:{pool.config.handler}"
    run.enforces_timeout = True  # type: ignore[attr-defined]  # the worker is killed at its deadline
    return run


@dataclass(frozen=True)
class LocalFunction:
    """One registered function: its name, ARN, handler and the settings a context reports."""

    name: str
    arn: str
    handler: Handler
    timeout_seconds: int = 60
    memory_mb: int = 128


@dataclass(frozen=True)
class InvokeResult:
    """What Lambda's Invoke returns, with the payload already decoded from JSON."""

    status_code: int
    payload: Any
    executed_version: str
    function_error: str | None = None


# Resolves a function reference the registry does not know (e.g. the sandbox's alias routing);
# returns None to let the registry report ResourceNotFoundException.
Fallback = Callable[[str, str | None], LocalFunction | None]


@dataclass
class FunctionRegistry:
    """Function name/ARN -> in-process handler; thread-safe."""

    region: str = "eu-west-1"
    account_id: str = "123456789012"
    fallback: Fallback | None = None
    _by_key: dict[str, LocalFunction] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"

    def register(
        self,
        name_or_arn: str,
        handler: Handler,
        *,
        timeout_seconds: int = 60,
        memory_mb: int = 128,
    ) -> LocalFunction:
        """Route invocations of a function (by name or ARN, any qualifier) to `handler`."""
        if not callable(handler):
            raise TypeError(f"handler for {name_or_arn!r} is not callable: {handler!r}")
        name, _ = split_function_ref(name_or_arn)
        arn = (
            ":".join(name_or_arn.split(":")[:7])
            if name_or_arn.startswith("arn:")
            else self.function_arn(name)
        )
        function = LocalFunction(name, arn, handler, timeout_seconds, memory_mb)
        with self._lock:
            self._by_key[name] = function
            self._by_key[arn] = function
        return function

    def unregister(self, name_or_arn: str) -> None:
        name, _ = split_function_ref(name_or_arn)
        with self._lock:
            for key in [k for k, f in self._by_key.items() if f.name == name]:
                del self._by_key[key]

    def names(self) -> list[str]:
        with self._lock:
            return sorted({f.name for f in self._by_key.values()})

    def resolve(self, function_ref: str) -> tuple[LocalFunction, str | None]:
        """The function and qualifier a FunctionName parameter names; ClientError 404 if unknown."""
        name, qualifier = split_function_ref(function_ref)
        with self._lock:
            function = self._by_key.get(name)
        if function is None and self.fallback is not None:
            function = self.fallback(name, qualifier)
        if function is None:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ResourceNotFoundException",
                        "Message": f"Function not found: {self.function_arn(name)}"
                        f"{':' + qualifier if qualifier else ''} (no in-process handler is registered)",
                    },
                    "ResponseMetadata": {"HTTPStatusCode": 404, "RequestId": str(uuid.uuid4())},
                },
                "Invoke",
            )
        return function, qualifier

    def invoke(
        self,
        function_ref: str,
        payload: bytes | str | None,
        clock: VirtualClock,
        *,
        invocation_type: str = "RequestResponse",
    ) -> InvokeResult:
        """Run a handler like Lambda's Invoke: JSON in, JSON out, errors as `Unhandled` payloads."""
        function, qualifier = self.resolve(function_ref)
        raw = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        event = json.loads(raw) if raw else {}
        version = qualifier or "$LATEST"
        started = clock.time()
        context = LambdaContext(
            function_name=function.name,
            function_version=version if version.isdigit() or version == "$LATEST" else "$LATEST",
            invoked_function_arn=function.arn + (f":{qualifier}" if qualifier else ""),
            memory_limit_in_mb=function.memory_mb,
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{function.name}",
            log_stream_name=f"local/[{version}]{uuid.uuid4().hex}",
            clock=clock,
            deadline=started + function.timeout_seconds,
        )
        if invocation_type == "Event":
            # Asynchronous invocation: Lambda answers 202 at once and runs the handler later.
            threading.Thread(
                target=_run_detached,
                args=(function, event, context),
                daemon=True,
                name=f"lambda-{function.name}",
            ).start()
            return InvokeResult(202, "", version)
        if invocation_type == "DryRun":
            return InvokeResult(204, "", version)

        def timed_out() -> bool:
            return clock.time() - started > function.timeout_seconds and not getattr(
                function.handler, "enforces_timeout", False
            )

        try:
            result = function.handler(event, context)
        except ClientError:
            raise
        except Exception as exc:  # noqa: BLE001 - every handler exception becomes a Lambda error payload
            if not timed_out():
                return InvokeResult(200, _error_payload(exc), version, "Unhandled")
            # Raised after the deadline (in virtual time): Lambda had killed the function by then,
            # so what it reports is the timeout, never the later exception.
            result = None
        if timed_out():
            # The handler ran (in virtual time) past the function's timeout: Lambda kills it.
            return InvokeResult(
                200,
                {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {context.aws_request_id} Error: Task timed out after "
                    f"{function.timeout_seconds:.2f} seconds",
                },
                version,
                "Unhandled",
            )
        try:
            return InvokeResult(200, json.loads(json.dumps(result)), version)
        except (TypeError, ValueError) as exc:
            return InvokeResult(
                200,
                {"errorType": "Runtime.MarshalError", "errorMessage": f"Unable to marshal response: {exc}"},
                version,
                "Unhandled",
            )


def _error_payload(exc: BaseException) -> dict[str, Any]:
    # The shape of the Python runtime's error payload; Step Functions uses errorType as the error.
    if isinstance(exc, FunctionErrorPayload):
        return exc.payload
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _run_detached(function: LocalFunction, event: Any, context: LambdaContext) -> None:
    try:
        function.handler(event, context)
    except Exception:  # noqa: BLE001 - an async invocation's failure only reaches the logs, as on AWS
        traceback.print_exc()


def split_function_ref(function_ref: str) -> tuple[str, str | None]:
    """Name and qualifier of any FunctionName form: name, name:qualifier, ARN, partial ARN."""
    if not function_ref:
        raise ValueError("empty Lambda function reference")
    parts = function_ref.split(":")
    if function_ref.startswith("arn:"):
        # arn:aws:lambda:region:account:function:name[:qualifier]
        if len(parts) < 7 or parts[5] != "function":
            raise ValueError(f"not a Lambda function ARN: {function_ref!r}")
        return parts[6], (parts[7] if len(parts) > 7 else None)
    if len(parts) >= 3 and parts[1] == "function":
        # account:function:name[:qualifier]
        return parts[2], (parts[3] if len(parts) > 3 else None)
    if len(parts) == 2:
        return parts[0], parts[1]
    return function_ref, None
