"""The event-path drill's Lambda steps: marked events -> forced failures -> DLQ -> redrive -> delivery.

The drill uses the `preview-events` queue (consumed by the fan-out's `green` alias) so the live
path is never touched. The state machine (state_machines/event_path_drill.py) calls `handler`
with `{"step": ..., ...}`:

  prepare          validate the request; preflight (mapping enabled, DLQ and queue empty); ids, lock expiry
  disable_mapping  UpdateEventSourceMapping Enabled=false: nothing consumes the queue any more
  check_mapping    GetEventSourceMapping until `Disabled` (bounded, back-off)
  put_events       N marked events (synthetic, drill id, channel `synthetic:drill-<id>-<seq>`)
  force_failures   receive without deleting (VisibilityTimeout=0) until SQS moves every event to
                   the DLQ after maxReceiveCount receives; count the drill's events in the DLQ
  enable_mapping   UpdateEventSourceMapping Enabled=true (idempotent)
  start_redrive    StartMessageMoveTask from the DLQ back to its source queue
  check_delivery   the move task's status and, per event, the fan-out's snapshot key
                   `cache:v<N>:snap:<channel>` holding that event (N = green's CACHE_SCHEMA_VERSION)
  restore          every failure path: enable the mapping, delete this drill's events left in the DLQ
  record           outcome in the release table, metrics, the operations notice

Why one channel per event: the fan-out keeps only the newest event of a channel as its
snapshot, so a channel per event proves each event was delivered, not just the last one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from service import keys
from service.models import Event
from tasks.common import client, iso, logger, parse_time, resource, task_handler, utc_now
from tasks.dr_drill import _dynamo
from tasks.errors import (
    DeliveryTimedOut,
    EventPathNotReady,
    EventsNotDeadLettered,
    InvalidDrill,
    MappingBusy,
    MappingStuck,
    RedriveFailed,
)
from tasks.operations import OpsContext
from tasks.settings import EventPathSettings

DRILL_TYPE = "event-path"
RECORD_KIND = "event-path-drill"
EVENT_TYPE = "dr_drill"
DEFAULT_EVENTS = 10
MAX_EVENTS = 50
LOCK_HOURS = 2
FIRST_WAIT_SECONDS = 5
MAX_WAIT_SECONDS = 60
MAX_MAPPING_CHECKS = 12  # 5+10+20+40+60*8 s: about 9 minutes; disabling takes seconds to a minute
MAX_FORCE_ATTEMPTS = 10
MAX_DELIVERY_CHECKS = 15  # about 12 minutes of back-off
# How long a peeked DLQ message stays hidden before its visibility is given back.
PEEK_VISIBILITY_SECONDS = 30
# Long polling asks every SQS server (short polling samples a subset and can miss messages).
RECEIVE_WAIT_SECONDS = 1
_DRILL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")


def channel(drill_id: str, seq: int) -> str:
    # `drill-` + 40 + `-` + 2 digits stays within the service's 64-character channel names.
    return f"synthetic:drill-{drill_id}-{seq:02d}"


def event_id(drill_id: str, seq: int) -> str:
    return f"drill-{drill_id}-{seq}"


# -- queue helpers ----------------------------------------------------------------------------


def _depth(queue_url: str) -> int:
    attributes = client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _attribute(queue_url: str, name: str) -> str:
    return str(
        client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=[name])["Attributes"][name]
    )


def _drill_of(body: str) -> str | None:
    """The drill id a message carries, or None for any other message."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") != EVENT_TYPE or not event.get("synthetic"):
        return None
    drill = (event.get("payload") or {}).get("drill_id")
    return str(drill) if drill else None


def _peek(queue_url: str, limit: int) -> Iterator[dict[str, Any]]:
    """Every message of a queue, hidden while read, visible again afterwards (bounded by `limit`)."""
    sqs = client("sqs")
    seen: list[dict[str, Any]] = []
    try:
        while len(seen) < limit:
            batch = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
                VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
            ).get("Messages", [])
            if not batch:
                break
            seen.extend(batch)
            yield from batch
    finally:
        _release(queue_url, [m for m in seen if not m.get("_deleted")])


def _release(queue_url: str, messages: list[dict[str, Any]]) -> None:
    sqs = client("sqs")
    for start in range(0, len(messages), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)


def _mapping_state(uuid: str) -> str:
    return str(client("lambda").get_event_source_mapping(UUID=uuid).get("State", "Unknown"))


def _set_mapping(uuid: str, enabled: bool) -> str:
    try:
        response = client("lambda").update_event_source_mapping(UUID=uuid, Enabled=enabled)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceInUseException":
            raise MappingBusy(f"event source mapping {uuid} is changing state: {exc}") from exc
        raise
    return str(response.get("State", "Unknown"))


# -- steps ------------------------------------------------------------------------------------


def prepare(event: Mapping[str, Any], settings: EventPathSettings) -> dict[str, Any]:
    request = dict(event.get("request") or {})
    drill_type = request.get("type", DRILL_TYPE)
    if drill_type != DRILL_TYPE:
        raise InvalidDrill(f"type: {drill_type!r} is not {DRILL_TYPE!r}")
    drill_id = str(request.get("drill_id") or event.get("execution_name") or "")
    if not _DRILL_ID.match(drill_id):
        raise InvalidDrill(f"drill_id: {drill_id!r} must be 1-40 letters, digits or dashes")
    count = request.get("events", DEFAULT_EVENTS)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_EVENTS:
        raise InvalidDrill(f"events: {count!r} must be an integer from 1 to {MAX_EVENTS}")
    # Preflight before the lock, while nothing has been changed: a paused mapping is someone's
    # decision (the drill must not re-enable it), and messages already in the DLQ or waiting on
    # the queue would be moved by the drill along with its own.
    state = _mapping_state(settings.mapping_uuid)
    if state != "Enabled":
        raise EventPathNotReady(
            f"the preview-events -> fanout:green mapping is {state}, not Enabled; "
            "find out who paused it before drilling"
        )
    in_dlq = _depth(settings.dlq_url)
    if in_dlq:
        raise EventPathNotReady(
            f"the preview-events DLQ holds {in_dlq} message(s); inspect or redrive them first "
            "(runbooks/dlq-redrive.md)"
        )
    started_at = str(event.get("started_at") or iso(utc_now()))
    return {
        "drill_id": drill_id,
        "type": DRILL_TYPE,
        "environment": settings.environment,
        "requested_by": str(request.get("requested_by") or "schedule"),
        "events": count,
        "started_at": started_at,
        "execution_arn": event.get("execution_arn"),
        "lock_expires_at": iso(parse_time(started_at) + timedelta(hours=LOCK_HOURS)),
    }


def disable_mapping(settings: EventPathSettings) -> dict[str, Any]:
    state = _set_mapping(settings.mapping_uuid, False)
    return {"uuid": settings.mapping_uuid, "state": state, "attempts": 0, "wait_seconds": FIRST_WAIT_SECONDS}


def check_mapping(mapping: Mapping[str, Any], max_checks: int = MAX_MAPPING_CHECKS) -> dict[str, Any]:
    state = _mapping_state(str(mapping["uuid"]))
    attempts = int(mapping.get("attempts", 0)) + 1
    if state != "Disabled" and attempts >= max_checks:
        raise MappingStuck(f"event source mapping {mapping['uuid']} still {state} after {attempts} checks")
    return {
        **mapping,
        "state": state,
        "attempts": attempts,
        "wait_seconds": min(int(mapping.get("wait_seconds", FIRST_WAIT_SECONDS)) * 2, MAX_WAIT_SECONDS),
    }


def put_events(drill: Mapping[str, Any], settings: EventPathSettings) -> dict[str, Any]:
    waiting = _depth(settings.queue_url)
    if waiting:
        raise EventPathNotReady(
            f"preview-events holds {waiting} message(s) the drill would dead-letter "
            "with its own; drill again once it is drained"
        )
    drill_id = str(drill["drill_id"])
    events = [
        Event(
            id=event_id(drill_id, seq),
            channel=channel(drill_id, seq),
            type=EVENT_TYPE,
            payload={"drill_id": drill_id, "seq": seq},
            synthetic=True,
        )
        for seq in range(int(drill["events"]))
    ]
    sqs = client("sqs")
    for start in range(0, len(events), 10):
        batch = events[start : start + 10]
        response = sqs.send_message_batch(
            QueueUrl=settings.queue_url,
            Entries=[{"Id": str(i), "MessageBody": e.model_dump_json()} for i, e in enumerate(batch)],
        )
        if response.get("Failed"):
            failed = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in response["Failed"])
            raise EventPathNotReady(f"SendMessageBatch refused drill events: {failed}")
    return {"count": len(events), "sent_at": iso(utc_now())}


def force_failures(
    drill: Mapping[str, Any],
    progress: Mapping[str, Any] | None,
    settings: EventPathSettings,
    max_attempts: int = MAX_FORCE_ATTEMPTS,
) -> dict[str, Any]:
    """Receive without deleting until SQS dead-letters the drill's events (the forced failure)."""
    drill_id, expected = str(drill["drill_id"]), int(drill["events"])
    policy = json.loads(_attribute(settings.queue_url, "RedrivePolicy") or "{}")
    if policy.get("deadLetterTargetArn") != _attribute(settings.dlq_url, "QueueArn"):
        raise EventPathNotReady(f"preview-events does not dead-letter into {settings.dlq_url}: {policy}")
    max_receive = int(policy["maxReceiveCount"])
    sqs = client("sqs")
    receives = 0
    # Each event needs maxReceiveCount receives; the next one moves it. Batches of 10.
    budget = (max_receive + 2) * (expected // 10 + 1) + 2
    while receives < budget:
        receives += 1
        batch = sqs.receive_message(
            QueueUrl=settings.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
            VisibilityTimeout=0,
            AttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        if not batch:
            break
    dead = {
        m["MessageId"]
        for m in _peek(settings.dlq_url, limit=expected + 100)
        if _drill_of(m["Body"]) == drill_id
    }
    attempts = int((progress or {}).get("attempts", 0)) + 1
    done = len(dead) >= expected
    if not done and attempts >= max_attempts:
        raise EventsNotDeadLettered(
            f"{len(dead)}/{expected} drill events in the DLQ after {attempts} attempts "
            f"(maxReceiveCount {max_receive})"
        )
    result: dict[str, Any] = {
        "dead_lettered": len(dead),
        "expected": expected,
        "max_receive_count": max_receive,
        "receives": int((progress or {}).get("receives", 0)) + receives,
        "attempts": attempts,
        "done": done,
    }
    if done:
        result["dead_lettered_at"] = iso(utc_now())
    return result


def enable_mapping(settings: EventPathSettings) -> dict[str, Any]:
    state = _mapping_state(settings.mapping_uuid)
    if state not in ("Enabled", "Enabling"):
        state = _set_mapping(settings.mapping_uuid, True)
    return {"uuid": settings.mapping_uuid, "state": state, "enabled": True}


def start_redrive(settings: EventPathSettings) -> dict[str, Any]:
    dlq_arn = _attribute(settings.dlq_url, "QueueArn")
    # No DestinationArn: SQS moves each message back to the queue it was dead-lettered from.
    handle = client("sqs").start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    configuration = client("lambda").get_function_configuration(
        FunctionName=settings.fanout_function, Qualifier="green"
    )
    schema = (configuration.get("Environment") or {}).get("Variables", {}).get("CACHE_SCHEMA_VERSION")
    if schema is None:
        raise RedriveFailed(
            f"{settings.fanout_function}:green has no CACHE_SCHEMA_VERSION: delivery cannot be checked"
        )
    return {
        "task_handle": handle,
        "source_arn": dlq_arn,
        "schema": str(keys.parse_schema(schema)),
        "started_at": iso(utc_now()),
        "attempts": 0,
        "wait_seconds": FIRST_WAIT_SECONDS,
    }


def check_delivery(
    drill: Mapping[str, Any],
    delivery: Mapping[str, Any],
    redis_client: Any,
    max_checks: int = MAX_DELIVERY_CHECKS,
) -> dict[str, Any]:
    tasks = (
        client("sqs")
        .list_message_move_tasks(SourceArn=delivery["source_arn"], MaxResults=10)
        .get("Results", [])
    )
    task = next(
        (t for t in tasks if t.get("TaskHandle") == delivery["task_handle"]), tasks[0] if tasks else {}
    )
    status = str(task.get("Status", "UNKNOWN"))
    if status in ("FAILED", "CANCELLED", "CANCELLING"):
        raise RedriveFailed(f"message move task {status}: {task.get('FailureReason', 'no reason given')}")
    drill_id, expected = str(drill["drill_id"]), int(drill["events"])
    missing = []
    for seq in range(expected):
        raw = redis_client.get(keys.snapshot_key(delivery["schema"], channel(drill_id, seq)))
        try:
            stored = json.loads(raw) if raw else None
        except ValueError:
            stored = None
        if not stored or stored.get("id") != event_id(drill_id, seq):
            missing.append(seq)
    attempts = int(delivery.get("attempts", 0)) + 1
    done = not missing
    if not done and attempts >= max_checks:
        raise DeliveryTimedOut(
            f"{expected - len(missing)}/{expected} drill events delivered after {attempts} checks "
            f"(move task {status}); missing seq {missing[:10]}"
        )
    result = {
        **delivery,
        "move_status": status,
        "moved": int(task.get("ApproximateNumberOfMessagesMoved", 0)),
        "delivered": expected - len(missing),
        "attempts": attempts,
        "done": done,
        "wait_seconds": min(int(delivery.get("wait_seconds", FIRST_WAIT_SECONDS)) * 2, MAX_WAIT_SECONDS),
    }
    if done:
        result["delivered_at"] = iso(utc_now())
    return result


def restore(drill: Mapping[str, Any], settings: EventPathSettings) -> dict[str, Any]:
    """Failure path: the mapping is enabled again and this drill's events leave the DLQ."""
    mapping = enable_mapping(settings)
    drill_id = str(drill["drill_id"])
    sqs = client("sqs")
    purged = 0
    for message in _peek(settings.dlq_url, limit=int(drill.get("events", MAX_EVENTS)) + 100):
        if _drill_of(message["Body"]) == drill_id:
            sqs.delete_message(QueueUrl=settings.dlq_url, ReceiptHandle=message["ReceiptHandle"])
            message["_deleted"] = True
            purged += 1
    # Events still on preview-events are delivered by green's fan-out once the mapping runs:
    # synthetic events raise no alerts and their snapshot keys expire.
    return {**mapping, "purged_from_dlq": purged}


def record(state: Mapping[str, Any], settings: EventPathSettings, ops: OpsContext) -> dict[str, Any]:
    drill = state["drill"]
    failure = state.get("failure")
    forced = state.get("forced") or {}
    delivery = state.get("delivery") or {}
    put = state.get("put") or {}
    restored = state.get("restore_failure") is None
    dead_letter_seconds = redrive_seconds = None
    if put.get("sent_at") and forced.get("dead_lettered_at"):
        dead_letter_seconds = (
            parse_time(forced["dead_lettered_at"]) - parse_time(put["sent_at"])
        ).total_seconds()
    if delivery.get("delivered_at"):
        redrive_seconds = (
            parse_time(delivery["delivered_at"]) - parse_time(delivery["started_at"])
        ).total_seconds()
    outcome = "SUCCEEDED" if not failure and delivery.get("done") and restored else "FAILED"
    result = {
        "drill_id": drill["drill_id"],
        "type": DRILL_TYPE,
        "outcome": outcome,
        "events": drill["events"],
        "dead_lettered": forced.get("dead_lettered"),
        "delivered": delivery.get("delivered"),
        "max_receive_count": forced.get("max_receive_count"),
        "dead_letter_seconds": dead_letter_seconds,
        "redrive_seconds": redrive_seconds,
        "mapping_restored": restored,
        "failure": failure,
        "finished_at": iso(utc_now()),
    }
    metrics: dict[str, tuple[float, str]] = {
        "EventPathDrillSucceeded" if outcome == "SUCCEEDED" else "EventPathDrillFailed": (1, "Count")
    }
    if redrive_seconds is not None:
        metrics["EventPathDrillRedriveSeconds"] = (redrive_seconds, "Seconds")
    ops.put_metrics(metrics)
    if settings.table_name:
        item = {
            "pk": f"drill#{drill['drill_id']}",
            "sk": "record",
            "kind": RECORD_KIND,
            "environment": settings.environment,
            "started_at": drill["started_at"],
            "requested_by": drill.get("requested_by"),
            "execution_arn": drill.get("execution_arn"),
            **result,
        }
        resource("dynamodb").Table(settings.table_name).put_item(Item=_dynamo(item))
    if outcome == "SUCCEEDED":
        summary = (
            f"SUCCEEDED: {drill['events']} events dead-lettered in {dead_letter_seconds:.0f}s, "
            f"redriven and delivered in {redrive_seconds:.0f}s"
        )
    else:
        summary = f"FAILED: {(failure or {}).get('Error', 'delivery not confirmed')}" + (
            "" if restored else "; preview-events mapping NOT re-enabled: enable it by hand"
        )
    ops.notify("event-path drill", summary, {**result, "runbook": "runbooks/dlq-redrive.md"})
    return result


STEPS = (
    "prepare",
    "disable_mapping",
    "check_mapping",
    "put_events",
    "force_failures",
    "enable_mapping",
    "start_redrive",
    "check_delivery",
    "restore",
    "record",
)


@task_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    step = event.get("step")
    settings = EventPathSettings.from_env()
    if step == "prepare":
        return prepare(event, settings)
    if step == "record":
        return record(event["state"], settings, OpsContext.of(settings))
    if step == "disable_mapping":
        return disable_mapping(settings)
    if step == "check_mapping":
        return check_mapping(event["mapping"])
    if step == "enable_mapping":
        return enable_mapping(settings)
    if step == "start_redrive":
        return start_redrive(settings)
    drill = event["drill"]
    if step == "put_events":
        return put_events(drill, settings)
    if step == "force_failures":
        return force_failures(drill, event.get("forced"), settings)
    if step == "check_delivery":
        from service.redis_client import get_redis

        result = check_delivery(drill, event["delivery"], get_redis())
        logger.info(
            "delivery check", extra={"delivered": result["delivered"], "move_status": result["move_status"]}
        )
        return result
    if step == "restore":
        return restore(drill, settings)
    raise InvalidDrill(f"step: {step!r} is not one of {', '.join(STEPS)}")
