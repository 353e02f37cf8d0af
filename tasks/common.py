"""What every task shares: the event parsed at the boundary, settings, AWS clients, time, error mapping.

Tasks are thin handlers over plain logic functions; this module keeps the plumbing out of them.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from contracts.state import describe_errors
from tasks.errors import AwsRequestFailed, InvalidState, TransientAwsError
from tasks.settings import ReleaseTaskSettings
from tasks.settings import SettingsError as SettingsError

# botocore's standard mode retries throttling with back-off first; what still fails is
# reported under one name so the state machine's Retry (with jitter) takes over.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=30)
TRANSIENT_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "TransactionConflictException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServiceException",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "ResourceConflictException",
    }
)


# The release tasks' settings; every family's model is in tasks.settings.
Settings = ReleaseTaskSettings


# What decides a client's endpoint, region and credentials. A client is reused (as a warm Lambda
# container reuses it; creating one costs tens of ms) while these and boto3's default session are
# unchanged, and a new one is made when they change, as the sandbox and tests do (a test that hooks
# botocore's events does so on a new default session).
_CLIENT_ENVIRONMENT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
)
_clients: dict[tuple[str | None, ...], tuple[boto3.Session, Any]] = {}
_clients_lock = threading.Lock()


def client(service: str) -> Any:
    """A boto3 client with standard retries and bounded timeouts, for the current environment."""
    key = (
        service,
        os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}"),
        *(os.environ.get(name) for name in _CLIENT_ENVIRONMENT),
    )
    with _clients_lock:  # boto3's default session is not safe to create clients from concurrently
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        assert session is not None
        found = _clients.get(key)
        if found is None or found[0] is not session:  # the entry holds its session: no id reuse
            found = _clients[key] = (session, session.client(service, config=_CLIENT_CONFIG))
        return found[1]


def resource(service: str) -> Any:
    return boto3.resource(service, config=_CLIENT_CONFIG)


def _wall_clock() -> datetime:
    # A local Lambda worker (orchestrator/lambda_runtime/bootstrap.py) publishes the engine's
    # virtual clock per invocation as "<virtual epoch> <real epoch> <speed>"; never set on AWS.
    published = os.environ.get("LOCAL_VIRTUAL_CLOCK")
    if published:
        virtual, real, speed = (float(part) for part in published.split())
        return datetime.fromtimestamp(virtual + (time.time() - real) * speed, UTC)
    return datetime.now(UTC)


# The one clock of the tasks; the local engine may substitute its virtual clock.
_clock: Callable[[], datetime] = _wall_clock


def utc_now() -> datetime:
    return _clock()


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Replace the tasks' clock (None restores the wall clock)."""
    global _clock
    _clock = clock or _wall_clock


def iso(moment: datetime) -> str:
    """Step Functions' timestamp format (`2026-01-01T00:00:00.000Z`), so strings compare in order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def metrics_window(since: str | datetime) -> tuple[datetime, datetime]:
    """[since, end) for a CloudWatch query about what happened since `since`: the end lies a minute
    ahead so the current minute is counted (CloudWatch excludes EndTime), and never before it."""
    start = parse_time(since)
    return start, max(utc_now() + timedelta(minutes=1), start + timedelta(minutes=1))


def console_url(region: str, execution_arn: str) -> str:
    """Where an operator follows the execution graph."""
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


# -- observability ----------------------------------------------------------------------------
SERVICE = "release-orchestrator"
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
# One metric set per invocation (not the process-wide singleton): the local engine runs the
# tasks of concurrent executions in one process.
_metrics: ContextVar[EphemeralMetrics | None] = ContextVar("release_task_metrics", default=None)


def add_metric(name: str, unit: MetricUnit, value: float) -> None:
    metrics = _metrics.get()
    if metrics is not None:
        metrics.add_metric(name=name, unit=unit, value=value)


Model = TypeVar("Model", bound=BaseModel)
Result = TypeVar("Result")


def parse_event(model: type[Model], event: Any, error: type[Exception] = InvalidState) -> Model:
    """`event` as `model`, or `error` naming every missing or malformed field by its path."""
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise error(f"{model.__name__} is invalid: {describe_errors(exc)}") from None


def event_model(
    model: type[Model], error: type[Exception] = InvalidState
) -> Callable[[Callable[[Model, Any], Result]], Callable[[Any, Any], Result]]:
    """Parse a handler's event into `model` once, at the boundary (as Powertools' `event_parser`
    does), so the handler and the logic below it work on typed sections; a malformed event fails
    with `error` naming the field (a wiring mistake, or a state edited by hand for a redrive)."""

    def decorate(func: Callable[[Model, Any], Result]) -> Callable[[Any, Any], Result]:
        @functools.wraps(func)
        def run(event: Any, context: Any) -> Result:
            return func(parse_event(model, event, error), context)

        return run

    return decorate


def task_handler(func: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """Powertools logging/tracing/metrics around a task, and AWS errors mapped to named errors.

    A raw botocore ClientError must not escape: Step Functions (and the local engine) would
    read it as a failure of the Invoke API itself instead of the task's own failure.
    """

    @functools.wraps(func)
    def run(event: dict[str, Any], context: Any) -> Any:
        metrics = EphemeralMetrics(
            namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "RealtimeAnalytics"), service=SERVICE
        )
        token = _metrics.set(metrics)
        try:
            return func(event, context)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            message = exc.response.get("Error", {}).get("Message", "")
            operation = getattr(exc, "operation_name", "AWS call")
            if code in TRANSIENT_ERROR_CODES:
                raise TransientAwsError(f"{operation} failed transiently: {code}: {message}") from exc
            raise AwsRequestFailed(f"{operation} failed: {code}: {message}") from exc
        finally:
            _metrics.reset(token)
            if metrics.metric_set:
                metrics.flush_metrics()

    traced = tracer.capture_lambda_handler(run, capture_response=False)
    return logger.inject_lambda_context(traced, log_event=False, clear_state=True)
