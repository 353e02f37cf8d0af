"""LocalEngine: run synthesized state machines with moto's ASL interpreter, in-process.

The engine talks to Step Functions only through boto3 (CreateStateMachine, StartExecution,
DescribeExecution, GetExecutionHistory, SendTask*, StopExecution), so the same code drives an
in-process `mock_aws` (the default) or a moto server started in this process (`endpoint_url`,
e.g. `ThreadedMotoServer`; set MOTO_PORT to its port so moto's own SDK integrations reach it).
Lambda tasks run the registered Python handlers, in-process or (`load_template(isolated=True)`)
each in worker processes from its own asset with the template's handler, environment, timeout,
memory and role credentials (orchestrator.lambda_runtime); Wait, Retry back-off and timeouts
run on the engine's VirtualClock (see moto_hooks).
"""

from __future__ import annotations

import importlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
import urllib3

from orchestrator.engine import moto_hooks
from orchestrator.engine.clock import VirtualClock
from orchestrator.engine.functions import FunctionRegistry, Handler, worker_handler
from orchestrator.engine.intrinsics import (
    FunctionSpec,
    ResourceMap,
    Sandbox,
    StateMachineSpec,
    lambda_functions,
    state_machines,
)

if TYPE_CHECKING:
    from orchestrator.lambda_runtime import CodeLayout, FunctionConfig, LambdaWorkers

_MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}}
# How often a waiting caller reads the history: each read takes the GIL from the execution's
# threads (and moto's lock), so a tighter loop slows down what it waits for.
_POLL_SECONDS = 0.02
_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
_SCHEDULED = frozenset({"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"})
_FAILED = frozenset(
    {
        "TaskFailed",
        "TaskTimedOut",
        "LambdaFunctionFailed",
        "LambdaFunctionTimedOut",
        "LambdaFunctionStartFailed",
        "LambdaFunctionScheduleFailed",
        "ActivityFailed",
        "ActivityTimedOut",
    }
)


class ExecutionTimeout(TimeoutError):
    """An execution did not reach the awaited point within the real-time limit given."""


def count_transitions(history: list[dict[str, Any]]) -> int:
    """State transitions as Step Functions bills them: every state entered plus every retry."""
    by_id = {e["id"]: e for e in history}
    entered = sum(1 for e in history if e["type"].endswith("StateEntered"))
    retries = sum(
        1
        for e in history
        if e["type"] in _SCHEDULED and by_id.get(e.get("previousEventId", 0), {}).get("type") in _FAILED
    )
    return entered + retries


@dataclass(frozen=True)
class ExecutionResult:
    """A finished execution: DescribeExecution and GetExecutionHistory, as the API returns them."""

    execution_arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    describe: dict[str, Any]
    history: list[dict[str, Any]]
    transitions: int

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    def events(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.history if e["type"] in types]

    def states_entered(self) -> list[str]:
        """Names of the states entered, in order (the path the execution took)."""
        return [
            e["stateEnteredEventDetails"]["name"] for e in self.history if e["type"].endswith("StateEntered")
        ]


@dataclass
class Execution:
    """A started execution; `wait()` returns its ExecutionResult."""

    engine: LocalEngine
    arn: str
    name: str

    def describe(self) -> dict[str, Any]:
        return _strip_metadata(self.engine.sfn.describe_execution(executionArn=self.arn))

    def history(self) -> list[dict[str, Any]]:
        return self.engine.history(self.arn)

    @property
    def status(self) -> str:
        return str(self.describe()["status"])

    def wait(self, timeout: float = 60.0) -> ExecutionResult:
        """Block until the execution ends (real-time limit `timeout`) and return its result."""
        deadline = time.monotonic() + timeout
        poll = 0.25 if self.engine.in_process else 0.02
        while True:
            describe = self.describe()
            if describe["status"] in _TERMINAL:
                return self.engine.result(self.arn, describe)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ExecutionTimeout(
                    f"execution {self.name} still {describe['status']} after {timeout}s of real time; "
                    f"last events: {[e['type'] for e in self.history()[-5:]]}"
                )
            moto_hooks.wait_finished(self.arn, min(poll, remaining))

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], Any], what: str, timeout: float = 10.0
    ) -> Any:
        """Poll the history until `predicate(history)` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            history = self.history()
            found = predicate(history)
            if found:
                return found
            if any(
                e["type"]
                in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut")
                for e in history
            ):
                raise ExecutionTimeout(f"execution {self.name} ended before {what}: {history[-1]['type']}")
            if time.monotonic() >= deadline:
                raise ExecutionTimeout(f"execution {self.name} did not reach {what} within {timeout}s")
            time.sleep(_POLL_SECONDS)

    def wait_for_state(self, state_name: str, timeout: float = 10.0) -> dict[str, Any]:
        """Block until the state named `state_name` has been entered; return that history event."""

        def entered(history: list[dict[str, Any]]) -> dict[str, Any] | None:
            for e in history:
                if e["type"].endswith("StateEntered") and e["stateEnteredEventDetails"]["name"] == state_name:
                    return e
            return None

        return self.wait_for(entered, f"state {state_name!r}", timeout)

    def task_tokens(self) -> list[str]:
        """Task tokens this execution currently waits on (in-process moto only)."""
        return moto_hooks.pending_task_tokens(self.arn)

    def wait_for_task_token(self, timeout: float = 10.0) -> str:
        """Block until the execution waits on a task token (e.g. an approval gate); return it."""
        deadline = time.monotonic() + timeout
        while True:
            tokens = self.task_tokens()
            # The token exists from the moment the state starts; the task waits on it (and its
            # timeout runs) once the integration call returned, i.e. after TaskSubmitted.
            if tokens and self._task_submitted():
                return tokens[-1]
            if self.status in _TERMINAL:
                raise ExecutionTimeout(f"execution {self.name} ended without waiting on a task token")
            if time.monotonic() >= deadline:
                raise ExecutionTimeout(f"execution {self.name} waits on no task token after {timeout}s")
            time.sleep(_POLL_SECONDS)

    def _task_submitted(self) -> bool:
        for event in reversed(self.history()):
            if event["type"] in ("TaskSubmitted", "ActivityStarted"):
                return True
            if event["type"] in ("TaskScheduled", "ActivityScheduled"):
                return False
        return False

    def send_task_success(self, output: Any, token: str | None = None) -> None:
        self.engine.sfn.send_task_success(
            taskToken=token or self.wait_for_task_token(), output=json.dumps(output)
        )

    def send_task_failure(self, error: str, cause: str = "", token: str | None = None) -> None:
        self.engine.sfn.send_task_failure(
            taskToken=token or self.wait_for_task_token(), error=error, cause=cause
        )

    def stop(self, error: str | None = None, cause: str | None = None) -> None:
        kwargs = {k: v for k, v in (("error", error), ("cause", cause)) if v is not None}
        self.engine.sfn.stop_execution(executionArn=self.arn, **kwargs)


@dataclass
class LocalEngine:
    """Runs state machines locally. Use as a context manager (installs hooks, starts moto).

    `endpoint_url=None` starts an in-process `mock_aws` (unless `start_mock=False`, when the
    caller already runs one with execution enabled); an `endpoint_url` points boto3 at a moto
    server and enables execution there via `/moto-api/config`.
    """

    sandbox: Sandbox = field(default_factory=Sandbox)
    clock: VirtualClock = field(default_factory=VirtualClock)
    functions: FunctionRegistry | None = None
    endpoint_url: str | None = None
    session: boto3.Session | None = None
    start_mock: bool = True
    jsonpath_cache: bool = True
    fast_paths: bool = True  # off only to measure what the speed-only hooks save
    workers: LambdaWorkers | None = None  # isolated functions' worker pools (created on first use)
    lambda_log_dir: Path | None = None  # isolated functions' logs: <dir>/<function>.log
    # The moto server isolated functions call (default: endpoint_url, else AWS_ENDPOINT_URL). A
    # ThreadedMotoServer started next to an in-process mock_aws serves the same backends.
    worker_endpoint_url: str | None = None
    _own_workers: bool = field(default=False, init=False, repr=False)
    _mock: Any = field(default=None, init=False, repr=False)
    _sfn: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.functions is None:
            self.functions = FunctionRegistry(region=self.sandbox.region, account_id=self.sandbox.account_id)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def in_process(self) -> bool:
        return self.endpoint_url is None

    def __enter__(self) -> LocalEngine:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Install the moto hooks and start (or configure) moto; `close()` undoes it."""
        assert self.functions is not None
        moto_hooks.install(
            self.clock, self.functions, jsonpath_cache=self.jsonpath_cache, fast_paths=self.fast_paths
        )
        try:
            if self.endpoint_url is None and self.start_mock:
                from moto import mock_aws

                self._mock = mock_aws(config=_MOTO_CONFIG)
                self._mock.start()
            elif self.endpoint_url is not None:
                _enable_execution(self.endpoint_url)
        except Exception:
            moto_hooks.uninstall()
            raise

    def close(self) -> None:
        if self.workers is not None and self._own_workers:
            self.workers.close()
            self.workers = None
            self._own_workers = False
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        self._sfn = None
        moto_hooks.uninstall()

    def client(self, service: str) -> Any:
        """A boto3 client for the sandbox (the engine's region and endpoint)."""
        session = self.session or boto3.session.Session()
        return session.client(service, region_name=self.sandbox.region, endpoint_url=self.endpoint_url)

    @property
    def sfn(self) -> Any:
        if self._sfn is None:
            self._sfn = self.client("stepfunctions")
        return self._sfn

    # -- functions -------------------------------------------------------------------------
    def register(
        self, name_or_arn: str, handler: Handler, *, timeout_seconds: int = 60, memory_mb: int = 128
    ) -> None:
        """Route Lambda invocations of a function (name or ARN, any qualifier) to `handler`."""
        assert self.functions is not None
        self.functions.register(name_or_arn, handler, timeout_seconds=timeout_seconds, memory_mb=memory_mb)

    def register_function(self, spec: FunctionSpec, handler: Handler | None = None) -> None:
        """Register a template function; without `handler`, import its `Handler` dotted path."""
        self.register(
            spec.arn,
            handler or import_handler(spec.handler),
            timeout_seconds=spec.timeout_seconds,
            memory_mb=spec.memory_mb,
        )

    def lambda_workers(self) -> LambdaWorkers:
        """The worker pools of this engine's isolated functions (stopped by `close()`)."""
        if self.workers is None:
            from orchestrator.lambda_runtime import LambdaWorkers

            self.workers = LambdaWorkers(region=self.sandbox.region)
            self._own_workers = True
        return self.workers

    def function_config(
        self, spec: FunctionSpec, layout: CodeLayout, *, environment: Mapping[str, str] | None = None
    ) -> FunctionConfig:
        """A template function as a worker runs it; `environment` is laid over the template's."""
        from orchestrator.lambda_runtime import FunctionConfig

        endpoint = self.worker_endpoint_url or self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            raise RuntimeError(
                "isolated functions call AWS from their own processes: the engine needs a moto server "
                "(endpoint_url, or AWS_ENDPOINT_URL), not an in-process mock_aws"
            )
        return FunctionConfig(
            name=spec.name,
            arn=spec.arn,
            handler=spec.handler,
            layout=layout,
            environment={**spec.environment, **(environment or {})},
            timeout_seconds=spec.timeout_seconds,
            memory_mb=spec.memory_mb,
            role_arn=spec.role_arn,
            region=self.sandbox.region,
            endpoint_url=endpoint,
            reserved_concurrency=spec.reserved_concurrency,
            log_dir=self.lambda_log_dir,
        )

    def register_worker(self, config: FunctionConfig, *, publish_clock: bool = False) -> None:
        """Route invocations of `config`'s function to worker processes running its asset."""
        pool = self.lambda_workers().pool(config)
        self.register(
            config.arn,
            worker_handler(pool, publish_clock=publish_clock),
            timeout_seconds=config.timeout_seconds,
            memory_mb=config.memory_mb,
        )

    # -- state machines --------------------------------------------------------------------
    def create_state_machine(
        self,
        name: str,
        definition: str | Mapping[str, Any],
        *,
        role_arn: str | None = None,
        type: str = "STANDARD",  # noqa: A002 - the API's word
        logging: Mapping[str, Any] | None = None,
        tracing_enabled: bool = True,
    ) -> str:
        """Create (or update in place) a state machine; returns its ARN."""
        text = definition if isinstance(definition, str) else json.dumps(definition)
        role = role_arn or f"arn:{self.sandbox.partition}:iam::{self.sandbox.account_id}:role/{name}-role"
        kwargs: dict[str, Any] = {
            "definition": text,
            "roleArn": role,
            "tracingConfiguration": {"enabled": tracing_enabled},
        }
        if logging is not None:
            kwargs["loggingConfiguration"] = dict(logging)
        arn = f"arn:{self.sandbox.partition}:states:{self.sandbox.region}:{self.sandbox.account_id}:stateMachine:{name}"
        try:
            self.sfn.describe_state_machine(stateMachineArn=arn)
        except self.sfn.exceptions.StateMachineDoesNotExist:
            return str(self.sfn.create_state_machine(name=name, type=type, **kwargs)["stateMachineArn"])
        self.sfn.update_state_machine(stateMachineArn=arn, **kwargs)
        return arn

    def deploy_state_machine(self, spec: StateMachineSpec) -> str:
        return self.create_state_machine(
            spec.name,
            spec.definition,
            role_arn=spec.role_arn,
            type=spec.type,
            logging=spec.logging,
            tracing_enabled=spec.tracing_enabled,
        )

    def load_template(
        self,
        template: Mapping[str, Any],
        *,
        handlers: Mapping[str, Handler] | None = None,
        import_handlers: bool = False,
        overrides: Mapping[str, str] | None = None,
        isolated: bool = False,
        layout: CodeLayout | Callable[[FunctionSpec], CodeLayout] | None = None,
        assembly_dir: Path | None = None,
        environment: Mapping[str, str] | None = None,
        publish_clock: bool = False,
        prestart: bool = False,
    ) -> dict[str, str]:
        """Create every state machine of a synthesized template and register its functions.

        `handlers` maps a function's logical id or physical name to its in-process handler;
        with `import_handlers`, other functions get the handler their `Handler` property names.
        With `isolated`, every other Python function runs in worker processes from `layout`
        (its asset, layers and runtime directory). A template of a cloud assembly names the
        directory it was read from as `assembly_dir`: each function then runs from the host
        build of its own cdk.out asset (what deploys) with the Lambda runtime's boto3 and the
        Powertools layer. Without either (an inline-code test stack), the development stand-in
        of orchestrator.lambda_runtime.assets is the asset. The template's handler, environment (plus
        `environment`), timeout, memory and role credentials; `publish_clock` lets the
        functions' own clock follow the engine's virtual clock; `prestart` starts one worker
        per function in the background. Returns state machine logical id -> ARN.
        """
        resources = ResourceMap(template, self.sandbox, overrides=dict(overrides or {}))
        handlers = dict(handlers or {})
        if isolated and layout is None and assembly_dir is not None:
            from orchestrator.lambda_runtime.assets import AssemblyLayouts

            assets = AssemblyLayouts.of_template(template, Path(assembly_dir))
            layout = lambda spec: assets.layout(spec.logical_id)  # noqa: E731 - one use
        configs = []
        for logical_id, spec in lambda_functions(template, resources).items():
            handler = handlers.get(logical_id) or handlers.get(spec.name)
            if handler is None and isolated and spec.handler:
                configs.append(self.function_config(spec, _layout_of(spec, layout), environment=environment))
                self.register_worker(configs[-1], publish_clock=publish_clock)
            elif handler is not None or import_handlers:
                self.register_function(spec, handler)
        if configs and prestart:
            self.lambda_workers().prestart(configs)
        return {
            lid: self.deploy_state_machine(spec) for lid, spec in state_machines(template, resources).items()
        }

    # -- executions ------------------------------------------------------------------------
    def start(self, state_machine_arn: str, input: Any = None, *, name: str | None = None) -> Execution:  # noqa: A002
        """StartExecution (always with a name); the execution runs on moto's worker thread."""
        name = name or f"exec-{uuid.uuid4().hex[:20]}"
        payload = input if isinstance(input, str) else json.dumps({} if input is None else input)
        arn = self.sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=payload)[
            "executionArn"
        ]
        return Execution(self, arn, name)

    def run(
        self, state_machine_arn: str, input: Any = None, *, name: str | None = None, timeout: float = 60.0
    ) -> ExecutionResult:  # noqa: A002
        """Start an execution and wait for its end (real-time limit `timeout`)."""
        return self.start(state_machine_arn, input, name=name).wait(timeout)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
            if token:
                kwargs["nextToken"] = token
            page = self.sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                return events

    def result(self, execution_arn: str, describe: Mapping[str, Any] | None = None) -> ExecutionResult:
        describe = dict(describe or _strip_metadata(self.sfn.describe_execution(executionArn=execution_arn)))
        history = self.history(execution_arn)
        raw_output = describe.get("output")
        return ExecutionResult(
            execution_arn=execution_arn,
            status=str(describe["status"]),
            output=json.loads(raw_output) if raw_output is not None else None,
            error=describe.get("error"),
            cause=describe.get("cause"),
            describe=describe,
            history=history,
            transitions=count_transitions(history),
        )

    def send_task_success(self, token: str, output: Any) -> None:
        self.sfn.send_task_success(taskToken=token, output=json.dumps(output))

    def send_task_failure(self, token: str, error: str, cause: str = "") -> None:
        self.sfn.send_task_failure(taskToken=token, error=error, cause=cause)

    def stop(self, execution_arn: str, error: str | None = None, cause: str | None = None) -> None:
        kwargs = {k: v for k, v in (("error", error), ("cause", cause)) if v is not None}
        self.sfn.stop_execution(executionArn=execution_arn, **kwargs)


def import_handler(dotted: str) -> Handler:
    """`package.module.function` -> the function (a Lambda `Handler` property)."""
    module_name, _, attribute = dotted.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {dotted!r} is not a dotted module.function path")
    handler = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(handler):
        raise ValueError(f"handler {dotted!r}: {module_name} has no callable {attribute!r}")
    return handler


def _layout_of(
    spec: FunctionSpec, layout: CodeLayout | Callable[[FunctionSpec], CodeLayout] | None
) -> CodeLayout:
    if layout is None:
        from orchestrator.lambda_runtime.assets import stand_in_layout

        return stand_in_layout()
    return layout(spec) if callable(layout) else layout


def _strip_metadata(response: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def _enable_execution(endpoint_url: str) -> None:
    # A moto server takes configuration changes over its management API.
    response = urllib3.request(
        "POST",
        f"{endpoint_url.rstrip('/')}/moto-api/config",
        body=json.dumps(_MOTO_CONFIG).encode(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    if response.status != 200:
        raise RuntimeError(
            f"moto server at {endpoint_url} refused to enable state machine execution: HTTP {response.status}"
        )
