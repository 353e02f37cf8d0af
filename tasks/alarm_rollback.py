"""Alarm rollback: a release-guard alarm went to ALARM, so blue takes all traffic back at once.

Triggered by an EventBridge rule (`CloudWatch Alarm State Change` to ALARM for the
release-guard alarms and the composite). Also triggered when a release execution is aborted
or times out, so an execution stopped by hand never leaves traffic split or the lock held.

Order matters: the lock is marked ROLLING_BACK first (SetWeights and Finalize refuse to act
without a clean lock), then every `live` alias returns to blue, then the execution is stopped
with the alarm as its cause, the aliases are checked once more (a task in flight may have
moved them), the lock is released, and the outcome recorded and notified. The
detect-to-rollback latency (alarm state-change time to aliases restored) is a metric.
A retry (EventBridge retries a failed target) resumes from a ROLLING_BACK lock.

A release in `connections` routing (its record says so) has the edge's canary share set to 0
before the aliases move, and its canary stage drained (DrainCanary, invoked and awaited) before
the lock is released: the execution is stopped, so its own rollback path never runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from contracts.names import task_function_name
from contracts.state import ReleaseRef
from tasks import canary_share, release_record
from tasks.common import (
    MetricUnit,
    Settings,
    add_metric,
    client,
    event_model,
    logger,
    parse_event,
    parse_time,
    resource,
    task_handler,
    utc_now,
)
from tasks.rollback import blue_versions, restore_blue

ROLLING_BACK = "ROLLING_BACK"
EXECUTION_ENDED = frozenset({"ABORTED", "TIMED_OUT"})


class AlarmState(BaseModel):
    value: str
    reason: str = ""
    timestamp: str | None = None  # CloudWatch writes `2026-01-01T00:00:00.000+0000`


class AlarmStateChange(BaseModel):
    """`detail` of `CloudWatch Alarm State Change`."""

    alarm_name: str = Field(default="unknown alarm", alias="alarmName")
    state: AlarmState


class ExecutionStatusChange(BaseModel):
    """`detail` of `Step Functions Execution Status Change`."""

    execution_arn: str | None = Field(default=None, alias="executionArn")
    status: str


@dataclass(frozen=True)
class Trigger:
    """What happened: an alarm went to ALARM, or a release execution ended holding the lock."""

    kind: Literal["alarm", "execution"]
    detected_at: datetime
    alarm: str = ""
    reason: str = ""
    execution_arn: str | None = None
    status: str = ""


def _alarm_time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    # CloudWatch writes `2026-01-01T00:00:00.000+0000`; Python wants `+00:00`.
    return parse_time(re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", raw))


def trigger_of(event: EventBridgeModel) -> Trigger | None:
    """What happened, or None when the event calls for no rollback."""
    detail = event.detail if isinstance(event.detail, dict) else {}
    if event.detail_type == "CloudWatch Alarm State Change":
        change = parse_event(AlarmStateChange, detail)
        if change.state.value != "ALARM":
            return None
        return Trigger(
            kind="alarm",
            alarm=change.alarm_name,
            reason=change.state.reason,
            detected_at=_alarm_time(change.state.timestamp) or parse_time(event.time),
        )
    if event.detail_type == "Step Functions Execution Status Change":
        ended = parse_event(ExecutionStatusChange, detail)
        if ended.status not in EXECUTION_ENDED:
            return None
        return Trigger(
            kind="execution",
            execution_arn=ended.execution_arn,
            status=ended.status,
            detected_at=parse_time(event.time),
        )
    return None


def _claim_lock(settings: Settings, lock: dict[str, Any]) -> bool:
    """Mark the lock ROLLING_BACK (or find it already so); False if another release holds it now."""
    try:
        resource("dynamodb").Table(settings.table_name).update_item(
            Key=release_record.lock_key(settings.environment),
            UpdateExpression="SET #s = :rolling",
            ConditionExpression="release_id = :rid",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":rolling": ROLLING_BACK, ":rid": lock["release_id"]},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _release_lock(settings: Settings, release_id: str) -> None:
    try:
        resource("dynamodb").Table(settings.table_name).delete_item(
            Key=release_record.lock_key(settings.environment),
            ConditionExpression="release_id = :rid",
            ExpressionAttributeValues={":rid": release_id},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise


def _stop_execution(execution_arn: str, error: str, cause: str) -> bool:
    try:
        client("stepfunctions").stop_execution(executionArn=execution_arn, error=error, cause=cause[:32768])
    except ClientError as exc:
        # Already ended (it may have been rolling back by itself): nothing to stop.
        logger.info(
            "release execution not stopped", extra={"execution_arn": execution_arn, "error": str(exc)}
        )
        return False
    return True


def alarm_rollback(settings: Settings, event: EventBridgeModel) -> dict[str, Any]:
    trigger = trigger_of(event)
    if trigger is None:
        return {"action": "none", "reason": "event does not call for a rollback"}
    lock = (
        resource("dynamodb")
        .Table(settings.table_name)
        .get_item(Key=release_record.lock_key(settings.environment), ConsistentRead=True)
        .get("Item")
    )
    if not lock or lock.get("kind", "release") != "release":
        return {"action": "none", "reason": f"no release in progress in {settings.environment}"}
    if trigger.kind == "execution" and lock.get("execution_arn") != trigger.execution_arn:
        return {"action": "none", "reason": "the ended execution does not hold the lock"}
    release_id = str(lock["release_id"])
    if not _claim_lock(settings, lock):
        return {"action": "none", "reason": f"release {release_id} released the lock meanwhile"}
    record = release_record.get(settings, release_id) or {}
    connections = record.get("routing") == "connections"
    if connections:
        canary_share.set_share(settings, 0)
    lam = client("lambda")
    blue = blue_versions(lam, settings, record.get("blue_versions") or {})
    restore_blue(lam, blue)
    restored_at = utc_now()
    latency_ms = max(0.0, (restored_at - trigger.detected_at).total_seconds() * 1000)
    add_metric("DetectToRollbackMs", MetricUnit.Milliseconds, latency_ms)
    if trigger.kind == "alarm":
        error, cause = "AlarmTriggered", f"alarm {trigger.alarm} went to ALARM: {trigger.reason}".strip()
    else:
        error, cause = "ReleaseExecutionEnded", f"execution ended {trigger.status} while holding the lock"
    execution_arn = str(lock.get("execution_arn", ""))
    stopped = trigger.kind == "alarm" and bool(execution_arn) and _stop_execution(execution_arn, error, cause)
    restore_blue(lam, blue)  # a task in flight when the lock was claimed may have moved an alias
    release = ReleaseRef(
        release_id=release_id,
        version=record.get("version"),
        requested_by=record.get("requested_by"),
        dry_run=bool(record.get("dry_run", False)),
        execution_arn=execution_arn,
    )
    drained = _drain(settings, release) if connections else None
    _release_lock(settings, release_id)
    summary = f"rolled back to blue ({', '.join(f'{fn} v{v}' for fn, v in blue.items())}): {cause}"
    if record:
        release_record.finish(
            settings,
            release,
            release_record.ROLLED_BACK,
            summary,
            cause=cause,
            detail={
                "blue": blue,
                "detect_to_rollback_ms": round(latency_ms, 1),
                "execution_stopped": stopped,
                **({"drain": drained} if drained is not None else {}),
            },
            actor="alarm-rollback",
        )
    logger.warning(
        "alarm rollback done", extra={"release_id": release_id, "latency_ms": latency_ms, "cause": cause}
    )
    return {
        "action": "rolled_back",
        "release_id": release_id,
        "restored": blue,
        "execution_stopped": stopped,
        "detect_to_rollback_ms": round(latency_ms, 1),
        **({"drain": drained} if drained is not None else {}),
    }


def _drain_client() -> Any:
    """A Lambda client that waits out a whole drain (DRAIN_TIMEOUT_SECONDS, 60 s by default, and
    at most 280 s) and never retries it: the tasks' shared client would time out after 30 s and
    invoke the drain again."""
    import boto3
    from botocore.config import Config

    config = Config(read_timeout=290, connect_timeout=5, retries={"total_max_attempts": 1})
    return boto3.session.Session().client("lambda", config=config)


def _drain(settings: Settings, release: ReleaseRef) -> dict[str, Any]:
    """DrainCanary's `$.drain` for the release (its function, awaited), or what went wrong: a
    failed drain leaves connections on the canary stage, served by blue, and is reported, but
    does not keep the lock."""
    name = task_function_name(settings.environment, "drain_canary")
    payload = json.dumps({"release": release.model_dump(mode="json")}).encode()
    try:
        answer = _drain_client().invoke(FunctionName=name, InvocationType="RequestResponse", Payload=payload)
    except ClientError as exc:
        logger.error("canary drain not invoked", extra={"function": name, "error": str(exc)})
        return {"error": f"{name} not invoked: {exc}"}
    body = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        logger.error("canary drain failed", extra={"function": name, "error": body})
        message = body.get("errorMessage") if isinstance(body, dict) else body
        return {"error": f"{name} failed: {message}"}
    return dict(body) if isinstance(body, dict) else {"error": f"{name} answered {body!r}"}


@task_handler
@event_model(EventBridgeModel)
def handler(event: EventBridgeModel, context: Any) -> dict[str, Any]:
    """The EventBridge event of either rule (Powertools' EventBridge model; `detail` by its type)."""
    return alarm_rollback(Settings.from_env(), event)
