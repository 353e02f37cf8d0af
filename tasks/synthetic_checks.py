"""SyntheticChecks step: prove green over real WebSocket connections before it takes traffic.

Configuration (environment, tasks.settings.CheckTaskSettings): PREVIEW_WS_URL (the preview stage's wss:// URL),
API_KEYS_SECRET_ARN (SecretString JSON {"api_key": ...}, AWSCURRENT is used),
PREVIEW_EVENTS_QUEUE_URL (the queue whose event source mapping invokes fanout:green),
SYNTHETIC_CONNECT_RATE (new connections per second, default 50),
SYNTHETIC_DEADLINE_SECONDS (whole run, default 120; capped by the invocation's remaining time
less a safety margin), SYNTHETIC_MESSAGE_INTERVAL_MS (default 100).

Raises GreenUnhealthy with a one-line summary when a threshold fails.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field

from contracts.state import SyntheticResult
from tasks import common
from tasks.checks.report import RunResult, Thresholds
from tasks.checks.run import RunPlan, execute, sqs_publisher
from tasks.common import event_model
from tasks.errors import GreenUnhealthy, InvalidRelease
from tasks.settings import CheckTaskSettings, SettingsError

logger = Logger()
tracer = Tracer()
metrics = Metrics()

SAFETY_MARGIN_SECONDS = 15.0


class SyntheticChecksInput(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    release_id: str = Field(min_length=1, max_length=128)
    environment: str = Field(min_length=1, max_length=64)
    clients: int = Field(default=10, ge=1, le=2000)
    messages: int = Field(default=5, ge=1, le=1000)
    p99_latency_ms: int = Field(default=2000, ge=1, le=60_000)
    min_success_rate: float = Field(default=0.99, ge=0.0, le=1.0)


def api_key(secret_arn: str) -> str:
    raw = common.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    try:
        key = json.loads(raw).get("api_key")
    except (ValueError, AttributeError):
        key = None
    if not isinstance(key, str) or not key:
        raise SettingsError(f"secret {secret_arn} has no 'api_key' field")
    return key


def deadline_seconds(context: Any, settings: CheckTaskSettings) -> float:
    budget = settings.deadline_seconds
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budget = min(budget, remaining() / 1000 - SAFETY_MARGIN_SECONDS)
    if budget < 5:
        raise SettingsError(f"only {budget:.1f} s left for the synthetic checks: raise the task's timeout")
    return budget


def plan_from_env(
    request: SyntheticChecksInput, context: Any, settings: CheckTaskSettings | None = None
) -> RunPlan:
    settings = settings or CheckTaskSettings.from_env()
    deadline = deadline_seconds(context, settings)
    return RunPlan(
        url=settings.preview_ws_url,
        api_key=api_key(settings.api_keys_secret_arn),
        clients=request.clients,
        messages=request.messages,
        connect_rate=settings.connect_rate,
        deadline_seconds=deadline,
        message_interval_seconds=settings.message_interval_ms / 1000,
        collect_seconds=max(2.0, 2 * request.p99_latency_ms / 1000),
        release_id=request.release_id,
    )


def synthetic_checks(request: SyntheticChecksInput, context: Any) -> tuple[RunResult, Thresholds]:
    settings = CheckTaskSettings.from_env()
    plan = plan_from_env(request, context, settings)
    publish = sqs_publisher(common.client("sqs"), settings.preview_events_queue_url)
    result = execute(plan, publish)
    return result, Thresholds(
        p99_latency_ms=request.p99_latency_ms, min_success_rate=request.min_success_rate
    )


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_model(SyntheticChecksInput, error=InvalidRelease)
def handler(request: SyntheticChecksInput, context: Any) -> dict[str, Any]:
    logger.append_keys(release_id=request.release_id, environment=request.environment)
    metrics.add_dimension(name="environment", value=request.environment)
    result, thresholds = synthetic_checks(request, context)
    output = SyntheticResult.model_validate(result.output(thresholds))
    latency = output.latency_ms
    metrics.add_metric(name="SyntheticSuccessRate", unit=MetricUnit.Percent, value=result.success_rate * 100)
    metrics.add_metric(name="SyntheticConnected", unit=MetricUnit.Count, value=result.connected)
    if latency.p99 is not None:
        metrics.add_metric(name="SyntheticLatencyP99", unit=MetricUnit.Milliseconds, value=latency.p99)
    logger.info(
        "synthetic checks finished",
        extra={
            **output.model_dump(),
            "connected": result.connected,
            "connect_rate_configured": result.connect_rate_configured,
            "connect_rate_achieved": result.connect_rate_achieved,
            "duration_ms": result.duration_ms,
            "cpu_seconds": round(result.cpu_seconds, 3),
        },
    )
    if not output.passed:
        raise GreenUnhealthy(result.summary(thresholds))
    return output.model_dump()
