"""Every hook the local engine places inside moto (pinned 5.2.5), and nothing else.

moto's Step Functions interpreter (a port of LocalStack's) runs ASL faithfully but (1) sends
Lambda tasks to its Lambda backend, which needs Docker, (2) really sleeps for Wait states,
Retry back-off and timeouts, (3) re-parses every JSONPath on every evaluation, (4) drops the
error/cause of StopExecution and (5) gives no signal when an execution ends. The hooks below fix
exactly that, by replacing module attributes for as long as they are installed:

* Lambda invocations (both `arn:aws:states:::lambda:invoke` and a function ARN as Resource)
  go to the in-process handlers of a `FunctionRegistry`;
* Wait, Retry back-off, task/heartbeat timeouts and the execution timeout run on a
  `VirtualClock`, and every timestamp moto records (history, start/stop dates, `$$.State.EnteredTime`)
  reads that clock;
* JSONPath parsing is memoised (parsed expressions are immutable, so sharing them is safe);
* the interpreter's deep copies of JSON state data use `jsoncopy.deepcopy` (same result);
* StopExecution keeps its error and cause; executions signal their end to `wait_finished`;
* request-response Task states (Lambda, and service integrations without `.sync` or
  `.waitForTaskToken`) run in the execution's thread instead of a new thread per attempt, while
  the clock skips waits (their TimeoutSeconds is then judged when the call returns, the way
  the thread-based wait judges a call that ends after its virtual deadline);
* GetExecutionHistory serializes each event once (`history_wire`) instead of running moto's
  generic serializer over the whole history on every read.

With an `IamEnforcer` installed (`install_iam`, independent of the engine hooks), moto also
judges every request signed with a role's sandbox credentials against that role's policies
(`IAM_HOOK_POINTS`): requests through `BaseResponse.call_action` and S3's own authorization
call, state machine service integrations signed as the execution's role, Lambda tasks of the
engine authorized before they run, and DescribeAlarms without composite alarms for callers
whose grant is not scoped to `*`.

`HOOK_POINTS` lists every symbol touched; `check_hook_points()` fails with a message naming
the one that moved when moto changes (tests/unit/engine/test_moto_hooks.py runs it).
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib
import logging
import math
import re
import threading
import time as _time
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from orchestrator.engine import jsoncopy
from orchestrator.engine.clock import VirtualClock, VirtualEvent
from orchestrator.engine.functions import FunctionRegistry
from orchestrator.engine.history_wire import HistoryBody, Unsupported

_SFN = "moto.stepfunctions"
_ASL = "moto.stepfunctions.parser.asl"
_LAMBDA_UTILS = f"{_ASL}.component.state.exec.state_task.lambda_eval_utils"
_EXECUTE_STATE = f"{_ASL}.component.state.exec.execute_state"
_PROGRAM = f"{_ASL}.component.program.program"
_WAIT_FUNCTION = f"{_ASL}.component.state.wait.wait_function.wait_function"
_TIMESTAMP = f"{_ASL}.component.state.wait.wait_function.timestamp"
_RETRIER = f"{_ASL}.component.common.retry.retrier_decl"
_CALLBACK = f"{_ASL}.eval.callback.callback"
_EVENT_MANAGER = f"{_ASL}.eval.event.event_manager"
_JSON_PATH = f"{_ASL}.utils.json_path"
_RESULT_PATH = f"{_ASL}.component.common.path.result_path"
_STATE = f"{_ASL}.component.state.state"
_BRANCHES = f"{_ASL}.component.state.exec.state_parallel.branches_decl"
_MAP_RUN = f"{_ASL}.component.state.exec.state_map.iteration.itemprocessor.map_run_record"
_EXECUTION = f"{_SFN}.parser.backend.execution"
_PARSER_MODELS = f"{_SFN}.parser.models"
_RESPONSES = f"{_SFN}.responses"
_ENVIRONMENT = f"{_ASL}.eval.environment"
_TASK_LAMBDA = f"{_ASL}.component.state.exec.state_task.state_task_lambda"
_SERVER_APP = "moto.moto_server.werkzeug_app"
_EXECUTION_WORKER = f"{_SFN}.parser.backend.execution_worker"
_CLOUDWATCH_MODELS = "moto.cloudwatch.models"
# Modules that deep-copy JSON state data on every state (input, results, parameters).
_COPYING = (
    f"{_ASL}.eval.states",
    f"{_ASL}.component.common.string.string_expression",
    f"{_ASL}.component.common.path.result_path",
    f"{_ASL}.component.state.exec.state_task.service.state_task_service",
)


class HookPointMoved(RuntimeError):
    """A symbol the engine hooks is gone from the installed moto: the pin or the hook must change."""


@dataclass(frozen=True)
class HookPoint:
    module: str
    attribute: str  # dotted inside the module, e.g. "WaitFunction._wait_interval"
    why: str

    @property
    def symbol(self) -> str:
        return f"{self.module}.{self.attribute}"

    def owner_and_name(self) -> tuple[Any, str]:
        try:
            owner: Any = importlib.import_module(self.module)
        except ImportError as exc:
            raise HookPointMoved(
                f"moto hook point moved: module {self.module} is gone ({exc}); needed for: {self.why}"
            ) from exc
        *path, name = self.attribute.split(".")
        for part in path:
            if not hasattr(owner, part):
                raise HookPointMoved(
                    f"moto hook point moved: {self.module}.{part} is gone; needed for: {self.why}"
                )
            owner = getattr(owner, part)
        if name not in vars(owner):
            raise HookPointMoved(f"moto hook point moved: {self.symbol} is gone; needed for: {self.why}")
        return owner, name


HOOK_POINTS: tuple[HookPoint, ...] = (
    HookPoint(_LAMBDA_UTILS, "_invoke_lambda_function", "Lambda tasks run in-process handlers"),
    HookPoint(_WAIT_FUNCTION, "WaitFunction._wait_interval", "Wait states on the virtual clock"),
    HookPoint(_TIMESTAMP, "datetime", "Wait Timestamp/TimestampPath measured on the virtual clock"),
    HookPoint(_RETRIER, "time", "Retry back-off on the virtual clock"),
    HookPoint(_EXECUTE_STATE, "threading", "task TimeoutSeconds on the virtual clock"),
    HookPoint(
        _EXECUTE_STATE,
        "ExecutionState._evaluate_with_timeout",
        "request-response tasks run without a thread per attempt",
    ),
    HookPoint(_CALLBACK, "Event", "waitForTaskToken and heartbeat timeouts on the virtual clock"),
    HookPoint(_PROGRAM, "threading", "state machine TimeoutSeconds on the virtual clock"),
    HookPoint(
        _EVENT_MANAGER, "EventManager._get_current_timestamp", "history timestamps from the virtual clock"
    ),
    HookPoint(_STATE, "datetime", "$$.State.EnteredTime from the virtual clock"),
    HookPoint(_BRANCHES, "datetime", "Parallel branch stop dates from the virtual clock"),
    HookPoint(_MAP_RUN, "datetime", "Map run dates from the virtual clock"),
    HookPoint(_EXECUTION, "datetime", "execution stopDate from the virtual clock"),
    HookPoint(_EXECUTION, "BaseExecutionWorkerCommunication.terminated", "signal the end of an execution"),
    HookPoint(_PARSER_MODELS, "datetime", "execution startDate from the virtual clock"),
    HookPoint(_JSON_PATH, "parse", "memoised JSONPath parsing (jsonpath_ng.ext)"),
    HookPoint(_RESULT_PATH, "parse", "memoised JSONPath parsing (jsonpath_ng)"),
    HookPoint(_RESPONSES, "StepFunctionResponse.stop_execution", "StopExecution keeps error and cause"),
    HookPoint(
        _RESPONSES,
        "StepFunctionResponse.get_execution_history",
        "GetExecutionHistory serializes each recorded event once",
    ),
    HookPoint(
        _EVENT_MANAGER,
        "EventManager.get_event_history",
        "recorded events read without a deep copy (moto only appends them)",
    ),
    HookPoint(_ENVIRONMENT, "Environment.set_error", "a stopped execution stays ABORTED"),
    HookPoint(_EVENT_MANAGER, "EventManager.add_event", "no events after StopExecution but ExecutionAborted"),
    *(
        HookPoint(module, "copy", "deep copies of JSON state data without copy's dispatch")
        for module in _COPYING
    ),
    HookPoint(
        _TASK_LAMBDA,
        "StateTaskLambda._from_error",
        "Invoke API errors as Lambda.<Code> for function-ARN tasks",
    ),
    HookPoint(
        _SERVER_APP,
        "DomainDispatcherApplication.get_backend_for_host",
        "a moto server finds a request's backend once per host (not by listing moto's package)",
    ),
    HookPoint(
        _EXECUTION_WORKER,
        "ExecutionWorker._get_evaluation_entrypoint",
        "a definition is parsed once, not once per execution",
    ),
    HookPoint(
        _CLOUDWATCH_MODELS,
        "Statistics.get_statistics_for_type",
        "percentile statistics (p99) of published values, as CloudWatch computes them",
    ),
)

# Hooks that change nothing but speed (benchmarks can leave them out to measure them).
FAST_PATHS: frozenset[str] = frozenset(
    {
        f"{_EXECUTE_STATE}.ExecutionState._evaluate_with_timeout",
        f"{_RESPONSES}.StepFunctionResponse.get_execution_history",
        f"{_EVENT_MANAGER}.EventManager.get_event_history",
        *(f"{module}.copy" for module in _COPYING),
        f"{_SERVER_APP}.DomainDispatcherApplication.get_backend_for_host",
        f"{_EXECUTION_WORKER}.ExecutionWorker._get_evaluation_entrypoint",
    }
)

# moto logs every task failure (including caught, expected ones) at ERROR with a dump of the
# state's parse tree; the engine reports failures through history instead.
_NOISY_LOGGER = f"{_ASL}.component.eval_component"


def check_hook_points() -> None:
    """Raise HookPointMoved naming every hook point missing from the installed moto."""
    missing = []
    for point in (*HOOK_POINTS, *IAM_HOOK_POINTS):
        try:
            point.owner_and_name()
        except HookPointMoved as exc:
            missing.append(str(exc))
    if missing:
        raise HookPointMoved("\n".join(missing))


# --------------------------------------------------------------------------------------------
# Replacements
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _parse_definition(definition: str) -> Any:
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    program = AmazonStateLanguageParser.parse(definition)[0]
    # A component draws its key into an execution's heap (retry attempts, back-off) lazily, on
    # first use: draw every key now, before executions share the tree, so none races for it.
    seen: set[int] = set()
    pending: list[Any] = [program]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, EvalComponent):
            _ = node.heap_key
        if isinstance(node, (list, tuple, set, frozenset)):
            pending.extend(node)
        elif isinstance(node, dict):
            pending.extend(node.values())
        elif hasattr(node, "__dict__") and type(node).__module__.startswith("moto.stepfunctions"):
            pending.extend(vars(node).values())
    return program


def _parsed_program(self: Any) -> Any:
    # The parsed program is the definition's component tree: built once (ANTLR parsing is a fifth
    # of a short execution's cost) and shared by executions, which keep their state in their own
    # Environment; its components change nothing after parsing (their runtime workers, job pools
    # and map-run records are created per evaluation).
    return _parse_definition(self._evaluation_details.state_machine_details.definition)


@functools.lru_cache(maxsize=4096)
def _parse_ext(path: str) -> Any:
    from jsonpath_ng.ext import parse

    return parse(path)


@functools.lru_cache(maxsize=4096)
def _parse_plain(path: str) -> Any:
    from jsonpath_ng import parse

    return parse(path)


class _ModuleProxy:
    """Stands in for a stdlib module inside one moto module; unknown attributes fall through."""

    def __init__(self, real: Any, **overrides: Any) -> None:
        self._real = real
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _datetime_module(clock: VirtualClock) -> _ModuleProxy:
    class VirtualDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> _dt.datetime:  # type: ignore[override]
            current = clock.now()
            # moto compares naive now() with naive UTC timestamps (Wait Timestamp), so a naive
            # now() here is UTC, whatever the host's time zone.
            return current.astimezone(tz) if tz is not None else current.replace(tzinfo=None)

        @classmethod
        def utcnow(cls) -> _dt.datetime:  # type: ignore[override]
            return clock.now().replace(tzinfo=None)

    return _ModuleProxy(_dt, datetime=VirtualDatetime)


def _threading_module(clock: VirtualClock) -> _ModuleProxy:
    class VirtualJoinThread(threading.Thread):
        def join(self, timeout: float | None = None) -> None:
            if timeout is None:
                return super().join()
            deadline = clock.time() + timeout
            while self.is_alive() and clock.time() < deadline:
                super().join(0.01)
            return None

    return _ModuleProxy(threading, Event=lambda: VirtualEvent(clock), Thread=VirtualJoinThread)


@dataclass
class _Installation:
    clock: VirtualClock
    functions: FunctionRegistry
    originals: list[tuple[Any, str, Any]] = field(default_factory=list)
    users: int = 0
    log_level: int = logging.NOTSET


_lock = threading.RLock()
_active: _Installation | None = None
_finished: dict[str, threading.Event] = {}
_finished_lock = threading.Lock()


def _require_active() -> _Installation:
    active = _active
    if active is None:
        raise RuntimeError("the local engine's moto hooks are not installed")
    return active


def _invoke_lambda_function(
    parameters: dict[str, Any], region: str, state_credentials: Any
) -> dict[str, Any]:
    # Replaces lambda_eval_utils._invoke_lambda_function: same arguments, same response shape.
    active = _require_active()
    _authorize_integration_invoke(parameters, region, state_credentials)
    result = active.functions.invoke(
        parameters["FunctionName"],
        parameters.get("Payload"),
        active.clock,
        invocation_type=parameters.get("InvocationType") or "RequestResponse",
    )
    response: dict[str, Any] = {
        "StatusCode": result.status_code,
        "Payload": result.payload,
        "ExecutedVersion": result.executed_version,
    }
    if result.function_error:
        response["FunctionError"] = result.function_error
    return response


def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
    # Replaces WaitFunction._wait_interval; a StopExecution ends the wait early, as on AWS.
    _require_active().clock.sleep(max(0, wait_seconds), keep_waiting=env.is_running)


def _current_timestamp() -> _dt.datetime:
    return _require_active().clock.now()


def _signal_terminated(original: Callable[[Any], None]) -> Callable[[Any], None]:
    @functools.wraps(original)
    def terminated(self: Any) -> None:
        try:
            original(self)
            _copy_stop_reason(self.execution)
        finally:
            _finished_event(self.execution.exec_arn).set()
            _prune_threads()

    return terminated


def _copy_stop_reason(execution: Any) -> None:
    # DescribeExecution of a stopped execution reports the error and cause given to StopExecution.
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    env = execution.exec_worker.env if execution.exec_worker is not None else None
    state = env.program_state() if env is not None else None
    if isinstance(state, ProgramStopped):
        execution.error = state.error or None
        execution.cause = state.cause or None


def _prune_threads() -> None:
    # moto keeps every worker thread it starts in TMP_THREADS and never reads it; drop the dead
    # ones so a long sandbox session or a property-based test does not accumulate them.
    from moto.stepfunctions.parser.utils import TMP_THREADS

    for thread in [t for t in list(TMP_THREADS) if not t.is_alive()]:
        try:
            TMP_THREADS.remove(thread)
        except ValueError:
            pass


def _stop_execution(self: Any) -> Any:
    # Replaces StepFunctionResponse.stop_execution, which drops `error` and `cause`.
    from moto.core.responses import ActionResult
    from moto.stepfunctions.parser.backend.execution import Execution as ParserExecution

    arn = self._get_param("executionArn")
    error = self._get_param("error")
    cause = self._get_param("cause")
    backend = self.stepfunction_backend
    execution = backend.describe_execution(arn)
    clock = _require_active().clock
    if isinstance(execution, ParserExecution):
        worker = execution.exec_worker
        # The worker builds its environment on its own thread; wait for it briefly so a stop
        # right after StartExecution is not lost.
        deadline = _time.monotonic() + 5
        while worker is not None and worker.env is None and _time.monotonic() < deadline:
            _time.sleep(0.001)
        env = worker.env if worker is not None else None
        if env is not None and env.is_running():
            env.event_manager._local_engine_stopped = True  # type: ignore[attr-defined]
            env.set_stop(stop_date=clock.now(), cause=cause, error=error)
            # A task waiting for its token (or heartbeat) would wait forever: release it.
            for endpoint in list(env.callback_pool_manager._pool.values()):
                if endpoint.get_outcome() is None:
                    endpoint.interrupt_all()
    else:
        execution.stop(stop_date=clock.now(), error=error or "", cause=cause or "")
    return ActionResult({"stopDate": execution.stop_date or clock.now()})


def _keep_stopped(original: Callable[..., None]) -> Callable[..., None]:
    # moto lets a failure raised by a task interrupted by StopExecution overwrite the stopped
    # state (the execution would end FAILED); on AWS a stopped execution ends ABORTED.
    @functools.wraps(original)
    def set_error(self: Any, error: Any) -> None:
        from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

        if isinstance(self._program_state, ProgramStopped):
            return
        original(self, error)

    return set_error


def _silence_after_stop(original: Callable[..., int]) -> Callable[..., int]:
    # After StopExecution, states that unwind (an interrupted task wait, a Wait cut short) must
    # not add events: AWS records ExecutionAborted right after the last event before the stop.
    @functools.wraps(original)
    def add_event(self: Any, context: Any, event_type: Any, *args: Any, **kwargs: Any) -> int:
        if getattr(self, "_local_engine_stopped", False) and event_type != "ExecutionAborted":
            return int(context.last_published_event_id or 0)
        return original(self, context, event_type, *args, **kwargs)

    return add_event


def _lambda_client_error(original: Callable[..., Any]) -> Callable[..., Any]:
    # With a function ARN as Resource, moto names every Invoke API failure "Exception"; AWS
    # names it Lambda.<Code> (what CDK's default LambdaInvoke retry matches), as moto already
    # does for arn:aws:states:::lambda:invoke.
    @functools.wraps(original)
    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        from botocore.exceptions import ClientError
        from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails
        from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
            CustomErrorName,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        if not isinstance(ex, ClientError):
            return original(self, env, ex)
        error = f"Lambda.{ex.response['Error']['Code']}"
        cause = str(ex.response["Error"].get("Message", ""))
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(error),
            event_type=HistoryEventType.LambdaFunctionFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]  # a total TypedDict in moto
                lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(error=error, cause=cause)
            ),
        )

    return from_error


def _runs_inline(state: Any, clock: VirtualClock) -> bool:
    # Only calls that return by themselves: Lambda tasks and request-response integrations. A
    # callback/.sync/activity task waits on something outside the call, and only a waiting
    # thread can give up on it at its deadline. In manual mode (auto_advance off) a handler's
    # clock.sleep blocks until the test advances the clock, and the state's timeout must be
    # able to fire first, so the thread stays there too.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import (
        StateTaskLambda,
    )

    if not clock.auto_advance or state.heartbeat is not None:
        return False
    if isinstance(state, StateTaskLambda):
        return True
    return isinstance(state, StateTaskService) and getattr(state.resource, "condition", None) is None


def _inline_tasks(original: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    # ExecutionState._evaluate_with_timeout starts a thread per task attempt only to wait on it
    # with a timeout (about 1-2 ms per attempt on a busy host). This is the same method with
    # the call made in place: same frame, same stack copy, same result handling; the timeout
    # counts as missed when the virtual clock passed the deadline before the call returned
    # (VirtualEvent's rule for an event set late), and a call's own failure wins over a late
    # return, as it does when the waiting thread sees the event set after the deadline.
    @functools.wraps(original)
    def evaluate_with_timeout(self: Any, env: Any) -> None:
        active = _active
        if active is None or not _runs_inline(self, active.clock):
            return original(self, env)
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError

        clock = active.clock
        self.timeout.eval(env=env)
        timeout_seconds: int = env.stack.pop()
        frame = env.open_frame()
        frame.states.reset(input_value=env.states.get_input())
        frame.stack = jsoncopy.deepcopy(env.stack)
        deadline = clock.time() + max(0.0, timeout_seconds)
        execution_outputs: list[Any] = []
        execution_exception: Exception | None = None
        try:
            self._eval_execution(frame)
            execution_outputs.extend(frame.stack)
        except Exception as ex:  # noqa: BLE001 - re-raised below, as moto's thread hands it over
            execution_exception = ex
        finished_on_time = clock.time() <= deadline
        frame.set_ended()
        env.close_frame(frame)
        if execution_exception is not None:
            raise execution_exception
        if not finished_on_time:
            raise EvalTimeoutError()
        env.stack.append(execution_outputs.pop())
        if not self._is_language_query_jsonpath():
            env.states.set_result(env.stack[-1])
        if self.assign_decl:
            self.assign_decl.eval(env=env)
        if self.result_selector:
            self.result_selector.eval(env=env)
        if self.result_path:
            self.result_path.eval(env)
        else:
            env.states.reset(input_value=env.stack.pop())
        return None

    return evaluate_with_timeout


def _event_history_snapshot(self: Any) -> list[Any]:
    # Replaces EventManager.get_event_history, which deep-copies the whole history on every
    # read. moto only ever appends finished event dicts and its readers (the response
    # serializer) only read them, so a snapshot of the list is enough.
    with self._mutex:
        return list(self._history_event_list)


_history_bodies: weakref.WeakKeyDictionary[Any, HistoryBody] = weakref.WeakKeyDictionary()
_history_bodies_lock = threading.Lock()


def _history_result_class() -> type[Any]:
    from moto.core.responses import ActionResult
    from moto.core.serialize import JSONSerializer
    from moto.settings import PRETTIFY_RESPONSES
    from moto.stepfunctions.parser.api import GetExecutionHistoryOutput

    class HistoryResult(ActionResult):
        """GetExecutionHistory's result, rendered from per-event fragments when it can be."""

        def __init__(self, manager: Any, events: list[Any]) -> None:
            super().__init__(GetExecutionHistoryOutput(events=events))
            self._manager = manager
            self._events = events

        def execute_result(self, context: Any) -> Any:
            if context.serializer_class is not JSONSerializer or PRETTIFY_RESPONSES:
                return super().execute_result(context)
            serializer = context.serializer_class(operation_model=context.operation_model)
            try:
                with _history_bodies_lock:
                    body = None if self._manager is None else _history_bodies.get(self._manager)
                    if body is None:
                        body = HistoryBody(context.operation_model.output_shape)
                        if self._manager is not None:
                            _history_bodies[self._manager] = body
                    text = body.render(self._events)
            except Unsupported:
                return super().execute_result(context)
            response = serializer._create_default_response()
            response["body"] = text
            response["headers"]["Content-Type"] = serializer._get_protocol_specific_content_type()
            return response["status_code"], response["headers"], response["body"]

    return HistoryResult


def _fast_history(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    # GetExecutionHistory through moto's generic serializer costs about 1 ms per event on
    # every read (a 600-transition execution: seconds); render each event once instead.
    result_class = _history_result_class()

    @functools.wraps(original)
    def get_execution_history(self: Any) -> Any:
        from moto.stepfunctions.parser.backend.execution import Execution as ParserExecution
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        backend = self.stepfunction_backend
        if getattr(self, "RESPONSE_KEY_PATH_TO_TRANSFORMER", None) or not isinstance(
            backend, StepFunctionsParserBackend
        ):
            return original(self)
        execution = backend.describe_execution(self._get_param("executionArn"))
        if not isinstance(execution, ParserExecution) or execution.exec_worker is None:
            return original(self)
        env = execution.exec_worker.env
        if env is None:  # not started yet: moto answers an empty history
            return result_class(None, [])
        return result_class(env.event_manager, env.event_manager.get_event_history())

    return get_execution_history


def _finished_event(execution_arn: str) -> threading.Event:
    with _finished_lock:
        event = _finished.get(execution_arn)
        if event is None:
            event = _finished[execution_arn] = threading.Event()
        return event


def wait_finished(execution_arn: str, timeout: float | None) -> bool:
    """Block (real time) until the execution has ended; True when it did within `timeout`."""
    ended = _finished_event(execution_arn).wait(timeout)
    if ended:
        with _finished_lock:
            _finished.pop(execution_arn, None)
    return ended


def pending_task_tokens(execution_arn: str) -> list[str]:
    """Task tokens an in-process execution is waiting on (oldest first), read from moto's backend."""
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackOutcome
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    parts = execution_arn.split(":")
    region, account = parts[3], parts[4]
    backend = stepfunctions_parser_backends[account][region]
    execution = backend.describe_execution(execution_arn)
    worker = getattr(execution, "exec_worker", None)
    env = getattr(worker, "env", None)
    if env is None or not env.is_running():
        return []
    pool = env.callback_pool_manager._pool
    tokens = []
    for token, endpoint in list(pool.items()):
        outcome = endpoint.get_outcome()
        if not isinstance(outcome, CallbackOutcome) and endpoint.consumer_error is None:
            tokens.append(token)
    return tokens


# --------------------------------------------------------------------------------------------
# Install / remove
# --------------------------------------------------------------------------------------------


def _backend_per_host(original: Callable[[Any, str | None], Any]) -> Callable[[Any, str | None], Any]:
    """A moto server dispatches every request under one lock, and for each request looks its
    host up by listing moto's package directory (a stat per backend, about 200) before trying
    every backend's URL patterns. The answer depends on the host alone: remember it. With many
    Lambda workers calling the server at once this lock was the sandbox's bottleneck."""
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host in found:
            return found[host]
        backend = original(self, host)
        if backend is not None:
            found[host] = backend
        return backend

    return get_backend_for_host


_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?)")


def percentile_statistics(original: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """moto answers Sum/Average/Minimum/Maximum/SampleCount only; CloudWatch also answers `pNN`
    over the values published one by one or as Values/Counts (not over statistic sets, whose
    values are gone). Nearest rank, as CloudWatch's percentiles of raw values are."""

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        match = _PERCENTILE.fullmatch(stat)
        if match is None:
            return original(self, stat)
        values = sorted(self.metric_single_values_list)
        if not values:
            return None
        rank = math.ceil(float(match[1]) / 100 * len(values))
        return values[min(max(rank, 1), len(values)) - 1]

    return get_statistics_for_type


def _replacements(clock: VirtualClock) -> list[tuple[HookPoint, Callable[[Any], Any]]]:
    datetime_proxy = _datetime_module(clock)
    threading_proxy = _threading_module(clock)
    time_proxy = _ModuleProxy(_time, sleep=lambda seconds: clock.sleep(seconds))
    copy_module = jsoncopy.CopyModule()
    values: dict[str, Callable[[Any], Any]] = {
        f"{_LAMBDA_UTILS}._invoke_lambda_function": lambda _orig: _invoke_lambda_function,
        f"{_WAIT_FUNCTION}.WaitFunction._wait_interval": lambda _orig: _wait_interval,
        f"{_RETRIER}.time": lambda _orig: time_proxy,
        f"{_EXECUTE_STATE}.threading": lambda _orig: threading_proxy,
        f"{_PROGRAM}.threading": lambda _orig: threading_proxy,
        f"{_EXECUTE_STATE}.ExecutionState._evaluate_with_timeout": _inline_tasks,
        f"{_CALLBACK}.Event": lambda _orig: lambda: VirtualEvent(clock),
        f"{_EVENT_MANAGER}.EventManager._get_current_timestamp": lambda _orig: staticmethod(
            _current_timestamp
        ),
        f"{_EXECUTION}.BaseExecutionWorkerCommunication.terminated": _signal_terminated,
        f"{_JSON_PATH}.parse": lambda _orig: _parse_ext,
        f"{_RESULT_PATH}.parse": lambda _orig: _parse_plain,
        f"{_RESPONSES}.StepFunctionResponse.stop_execution": lambda _orig: _stop_execution,
        f"{_RESPONSES}.StepFunctionResponse.get_execution_history": _fast_history,
        f"{_EVENT_MANAGER}.EventManager.get_event_history": lambda _orig: _event_history_snapshot,
        f"{_ENVIRONMENT}.Environment.set_error": _keep_stopped,
        f"{_EVENT_MANAGER}.EventManager.add_event": _silence_after_stop,
        f"{_TASK_LAMBDA}.StateTaskLambda._from_error": _lambda_client_error,
        f"{_SERVER_APP}.DomainDispatcherApplication.get_backend_for_host": _backend_per_host,
        f"{_EXECUTION_WORKER}.ExecutionWorker._get_evaluation_entrypoint": lambda _orig: _parsed_program,
        f"{_CLOUDWATCH_MODELS}.Statistics.get_statistics_for_type": percentile_statistics,
    }
    for module in (_TIMESTAMP, _STATE, _BRANCHES, _MAP_RUN, _EXECUTION, _PARSER_MODELS):
        values[f"{module}.datetime"] = lambda _orig: datetime_proxy
    for module in _COPYING:
        values[f"{module}.copy"] = lambda _orig: copy_module
    missing = {p.symbol for p in HOOK_POINTS} ^ set(values)
    if missing:
        raise RuntimeError(f"hook table and HOOK_POINTS disagree on: {sorted(missing)}")
    return [(point, values[point.symbol]) for point in HOOK_POINTS]


def install(
    clock: VirtualClock,
    functions: FunctionRegistry,
    *,
    jsonpath_cache: bool = True,
    fast_paths: bool = True,
) -> None:
    """Install the hooks (re-entrant: nested installs must share the clock and registry).

    For benchmarks: `jsonpath_cache=False` leaves moto's JSONPath parsing as it is, and
    `fast_paths=False` leaves the hooks that only save time (`FAST_PATHS`) out."""
    global _active
    with _lock:
        if _active is not None:
            if _active.clock is not clock or _active.functions is not functions:
                raise RuntimeError(
                    "moto hooks are already installed with another clock or function registry; "
                    "one LocalEngine per process can be active at a time"
                )
            _active.users += 1
            return
        check_hook_points()
        installation = _Installation(clock=clock, functions=functions, users=1)
        for point, make in _replacements(clock):
            if (
                not jsonpath_cache
                and point.module in (_JSON_PATH, _RESULT_PATH)
                and point.attribute == "parse"
            ):
                continue
            if not fast_paths and point.symbol in FAST_PATHS:
                continue
            owner, name = point.owner_and_name()
            original = vars(owner)[name]
            installation.originals.append((owner, name, original))
            current = getattr(owner, name)
            setattr(owner, name, make(current))
        noisy = logging.getLogger(_NOISY_LOGGER)
        installation.log_level = noisy.level
        noisy.setLevel(logging.CRITICAL)
        _active = installation


def uninstall() -> None:
    """Undo one `install`; the last one restores every original moto attribute."""
    global _active
    with _lock:
        if _active is None:
            return
        _active.users -= 1
        if _active.users > 0:
            return
        for owner, name, original in reversed(_active.originals):
            setattr(owner, name, original)
        logging.getLogger(_NOISY_LOGGER).setLevel(_active.log_level)
        _active = None


@contextmanager
def installed(
    clock: VirtualClock,
    functions: FunctionRegistry,
    *,
    jsonpath_cache: bool = True,
    fast_paths: bool = True,
) -> Iterator[None]:
    install(clock, functions, jsonpath_cache=jsonpath_cache, fast_paths=fast_paths)
    try:
        yield
    finally:
        uninstall()


def is_installed() -> bool:
    return _active is not None


def active_clock() -> VirtualClock | None:
    """The clock of the installed hooks, if any (what handlers should read as `now`)."""
    active = _active
    return active.clock if active is not None else None


# --------------------------------------------------------------------------------------------
# IAM enforcement (orchestrator.iam): installed on its own, with or without the engine hooks
# --------------------------------------------------------------------------------------------

_RESPONSES_CORE = "moto.core.responses"
_AUTHORIZATION = "moto.core.authorization"
_CLOUDWATCH_RESPONSES = "moto.cloudwatch.responses"
_SERVICE = f"{_ASL}.component.state.exec.state_task.service"
# Modules of the ASL interpreter that make SDK calls for a state machine's service integrations.
_INTEGRATIONS = (
    _LAMBDA_UTILS,
    f"{_SERVICE}.state_task_service_aws_sdk",
    f"{_SERVICE}.state_task_service_dynamodb",
    f"{_SERVICE}.state_task_service_sns",
    f"{_SERVICE}.state_task_service_sqs",
    f"{_SERVICE}.state_task_service_sfn",
    f"{_SERVICE}.state_task_service_events",
)

IAM_HOOK_POINTS: tuple[HookPoint, ...] = (
    HookPoint(_RESPONSES_CORE, "BaseResponse.call_action", "IAM: every request judged against its role"),
    HookPoint(
        _AUTHORIZATION,
        "ActionAuthenticatorMixin._authenticate_and_authorize_s3_action",
        "IAM: S3 requests judged against their role",
    ),
    HookPoint(
        _CLOUDWATCH_RESPONSES,
        "CloudWatchResponse.describe_alarms",
        "IAM: composite alarms only for DescribeAlarms granted on *",
    ),
    *(
        HookPoint(module, "boto_client_for", "IAM: service integrations sign as the execution role")
        for module in _INTEGRATIONS
    ),
)

# The error each service answers a denied call with: (code, HTTP status).
_DENIAL_ERRORS: dict[str, tuple[str, int]] = {
    "lambda": ("AccessDeniedException", 403),
    "dynamodb": ("AccessDeniedException", 400),
    "secretsmanager": ("AccessDeniedException", 400),
    "kms": ("AccessDeniedException", 400),
    "stepfunctions": ("AccessDeniedException", 400),
    "logs": ("AccessDeniedException", 400),
    "events": ("AccessDeniedException", 400),
    "scheduler": ("AccessDeniedException", 403),
    "ce": ("AccessDeniedException", 400),
    "budgets": ("AccessDeniedException", 400),
    "xray": ("AccessDeniedException", 403),
    "sqs": ("AccessDenied", 403),
    "cloudwatch": ("AccessDenied", 403),
    "elasticache": ("AccessDenied", 403),
    "sts": ("AccessDenied", 403),
    "s3": ("AccessDenied", 403),
    "sns": ("AuthorizationError", 403),
}

_iam_lock = threading.RLock()
_iam_enforcer: Any = None  # orchestrator.iam.enforcer.IamEnforcer while installed
_iam_originals: list[tuple[Any, str, Any]] = []


def iam_enforcer() -> Any:
    """The installed IamEnforcer, or None."""
    return _iam_enforcer


def _judged_role(access_key: str | None) -> str | None:
    # A role the enforcer knows signed this request; None: the operator's key, not judged.
    from orchestrator.iam.identity import role_of

    enforcer = _iam_enforcer
    if enforcer is None or not access_key:
        return None
    role = role_of(access_key)
    return role if role is not None and enforcer.knows(role) else None


def _request_call(response: Any, service: str, operation: str) -> Any:
    from orchestrator.iam.requests import Call

    params: dict[str, Any] = {}
    try:
        if not (response.automated_parameter_parsing and hasattr(response, "params")):
            response.parse_parameters(response.normalized_request)
        params = dict(response.params)
        for key, value in (response.uri_match or {}).items():
            params.setdefault(key, value)
    except Exception:  # noqa: BLE001 - an unparsable request is judged with what the URL says
        params = dict(getattr(response, "uri_match", None) or {})
    return Call(
        service=service,
        operation=operation,
        params=params,
        region=response.region,
        account_id=response.current_account,
        partition=response.partition,
    )


def _denial_text(service: str, message: str) -> str:
    if service == "sns":  # SNS spells its actions in upper case in its messages
        return message.replace(" sns:", " SNS:")
    return message


@functools.lru_cache(maxsize=1)
def _access_denied_class() -> type[Exception]:
    from moto.core.exceptions import ServiceException

    # Defined outside moto's packages: moto's serializer then looks the error code up in the
    # service's own model only (it derives a service from a moto exception's module name).
    class SandboxAccessDenied(ServiceException):
        pass

    return SandboxAccessDenied


def _denied_response(response: Any, service: str, message: str) -> Any:
    from moto.core.responses import ActionResult

    code, status = _DENIAL_ERRORS.get(service, ("AccessDeniedException", 403))
    error = _access_denied_class()(code, _denial_text(service, message))
    with warnings.catch_warnings():
        # moto warns that the code is not an error shape of the service model (AWS's models
        # leave AccessDenied(Exception) out); the serialized error is what AWS sends anyway.
        warnings.simplefilter("ignore", UserWarning)
        _status, headers, body = response.serialized(ActionResult(error))
    headers = {k: v for k, v in dict(headers).items() if k.lower() not in ("status", "x-amzn-query-error")}
    headers["status"] = str(status)
    if not any(k.lower() == "x-amzn-errortype" for k in headers):
        headers["x-amzn-ErrorType"] = code
    if service == "sqs":  # JSON SQS names query-compatible errors in this header
        headers["x-amzn-query-error"] = f"{code};Sender"
    headers, body = response._enrich_response(headers, body)  # request id, as on every moto answer
    return status, headers, body


def _iam_call_action(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def call_action(self: Any) -> Any:
        role = _judged_role(getattr(self, "access_key", None))
        if role is None:
            return original(self)
        service = self.boto3_service_name
        operation = self._get_action()
        decision = _iam_enforcer.judge(role, _request_call(self, service, operation))
        if not decision.allowed:
            return _denied_response(self, service, decision.message)
        if service == "cloudwatch" and operation == "DescribeAlarms":
            self._iam_composites_visible = _iam_enforcer.grants_on_all_resources(
                role, "cloudwatch:DescribeAlarms"
            )
        return original(self)

    return call_action


def _s3_operation(response: Any) -> str | None:
    from moto.core.routing import NotFound, get_service_router

    try:
        operation, uri_params = get_service_router("s3").match(response.normalized_request)
    except (NotFound, NotImplementedError):
        return None
    response._iam_s3_uri_params = uri_params
    return str(operation.name)


def _iam_s3_authorize(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def authorize(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> Any:
        original(self, bucket_name=bucket_name, key_name=key_name)
        role = _judged_role(getattr(self, "access_key", None))
        if role is None:
            return None
        from orchestrator.iam.requests import Call

        operation = _s3_operation(self) or str(self.data.get("Action") or "Unknown")
        params = dict(getattr(self, "_iam_s3_uri_params", {}) or {})
        params.setdefault("Bucket", bucket_name)
        if key_name is not None:
            params.setdefault("Key", key_name)
        copy_source = self.headers.get("x-amz-copy-source")
        if copy_source:
            params["CopySource"] = copy_source
        call = Call("s3", operation, params, self.region, self.current_account, self.partition)
        decision = _iam_enforcer.judge(role, call)
        if not decision.allowed:
            from moto.s3.exceptions import S3ClientError

            # moto answers S3 errors it has no model for with HTTP 400 (AWS: 403); the code is AWS's.
            raise S3ClientError("AccessDenied", decision.message)
        return None

    return authorize


def _iam_describe_alarms(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def describe_alarms(self: Any) -> Any:
        result = original(self)
        if getattr(self, "_iam_composites_visible", True) is False:
            # CloudWatch omits composite alarms (no error) unless DescribeAlarms is granted on *.
            result.result["CompositeAlarms"] = []
        return result

    return describe_alarms


# Service-integration clients, reused per (who signs, region, service, where moto answers): moto
# builds a boto3 client for every task state it runs, which costs more than most of the calls.
_integration_clients: dict[tuple[Any, ...], Any] = {}
_integration_clients_lock = threading.Lock()


def _iam_boto_client_for(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        from moto.core.models import botocore_stubber
        from moto.settings import moto_server_port

        role = getattr(state_credentials, "role_arn", None)
        enforcer = _iam_enforcer
        signs_as = role if enforcer is not None and role and enforcer.knows(role) else None
        key = (
            signs_as,
            region,
            service,
            botocore_stubber.enabled,
            None if botocore_stubber.enabled else moto_server_port(),
        )
        if signs_as is not None:
            from orchestrator.iam.identity import credentials_for

            credentials_for(signs_as)  # (re)registers the key, so what the client signs maps to the role
        with _integration_clients_lock:
            found = _integration_clients.get(key)
            if found is None:
                found = _integration_clients[key] = make(region, service, state_credentials, signs_as)
            return found

    def make(region: str, service: str, state_credentials: Any, role: str | None) -> Any:
        if role is None:
            return original(region=region, service=service, state_credentials=state_credentials)
        import boto3
        from botocore.config import Config
        from moto.core.models import botocore_stubber
        from moto.settings import moto_server_port
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

        from orchestrator.iam.identity import credentials_for

        credentials = credentials_for(role)  # a role's keys are fixed for the life of the process
        kwargs: dict[str, Any] = {}
        if not botocore_stubber.enabled:
            kwargs["endpoint_url"] = f"http://localhost:{moto_server_port()}"
        return boto3.client(
            service_name=service,
            region_name=region,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            ),
            **kwargs,
        )

    return boto_client_for


def _authorize_integration_invoke(parameters: dict[str, Any], region: str, state_credentials: Any) -> None:
    # The engine runs Lambda tasks without a request to moto: judge lambda:InvokeFunction here,
    # as Lambda would for the state machine's role, and fail the way the Invoke API fails.
    enforcer = _iam_enforcer
    role = getattr(state_credentials, "role_arn", None)
    if enforcer is None or not role or not enforcer.knows(role):
        return
    from botocore.exceptions import ClientError

    from orchestrator.iam.requests import Call

    policies = enforcer.policies
    call = Call("lambda", "Invoke", dict(parameters), region, policies.account_id, policies.partition)
    decision = enforcer.judge(role, call, via="integration")
    if not decision.allowed:
        raise ClientError(
            {
                "Error": {"Code": "AccessDeniedException", "Message": decision.message},
                "ResponseMetadata": {"HTTPStatusCode": 403, "RequestId": "sandbox-iam"},
            },
            "Invoke",
        )


def _iam_replacements() -> dict[str, Callable[[Any], Any]]:
    values: dict[str, Callable[[Any], Any]] = {
        f"{_RESPONSES_CORE}.BaseResponse.call_action": _iam_call_action,
        f"{_AUTHORIZATION}.ActionAuthenticatorMixin._authenticate_and_authorize_s3_action": _iam_s3_authorize,
        f"{_CLOUDWATCH_RESPONSES}.CloudWatchResponse.describe_alarms": _iam_describe_alarms,
    }
    for module in _INTEGRATIONS:
        values[f"{module}.boto_client_for"] = _iam_boto_client_for
    missing = {p.symbol for p in IAM_HOOK_POINTS} ^ set(values)
    if missing:
        raise RuntimeError(f"IAM hook table and IAM_HOOK_POINTS disagree on: {sorted(missing)}")
    return values


def install_iam(enforcer: Any) -> None:
    """Judge requests with `enforcer` (an orchestrator.iam.enforcer.IamEnforcer) until `uninstall_iam`.

    Re-installing replaces the enforcer; the moto attributes are patched once."""
    global _iam_enforcer
    with _iam_lock:
        if not _iam_originals:
            for point in IAM_HOOK_POINTS:
                point.owner_and_name()  # fail loudly before patching anything
            values = _iam_replacements()
            for point in IAM_HOOK_POINTS:
                owner, name = point.owner_and_name()
                original = vars(owner)[name]
                _iam_originals.append((owner, name, original))
                setattr(owner, name, values[point.symbol](getattr(owner, name)))
        _iam_enforcer = enforcer


def uninstall_iam(enforcer: Any = None) -> None:
    """Stop judging (only if `enforcer` is the installed one, when given) and restore moto."""
    global _iam_enforcer
    with _iam_lock:
        if enforcer is not None and _iam_enforcer is not enforcer:
            return
        _iam_enforcer = None
        for owner, name, original in reversed(_iam_originals):
            setattr(owner, name, original)
        _iam_originals.clear()
