"""Release record: the history and audit trail of every release in DynamoDB (who, what, when, outcome).

One table holds the environment locks and the releases:

    pk = "lock#<env>",        sk = "lock"              the lock (written by the state machine)
    pk = "release#<id>",      sk = "record"            one item per release: status and outcome
    pk = "release#<id>",      sk = "event#<time>#<n>"  one item per transition (the audit trail)

Records are listed per environment, newest first, through the `by_environment` index
(gsi1pk = "env#<env>", gsi1sk = started_at).
"""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from contracts.state import Failure, Recorded, Release, ReleaseRef
from tasks import notify
from tasks.common import Settings, client, event_model, iso, logger, resource, task_handler, utc_now
from tasks.errors import InvalidRelease

RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
DRY_RUN_SUCCEEDED = "DRY_RUN_SUCCEEDED"
ROLLED_BACK = "ROLLED_BACK"
ABORTED = "ABORTED"
TERMINAL_STATUSES = frozenset({SUCCEEDED, DRY_RUN_SUCCEEDED, ROLLED_BACK, ABORTED})
ENVIRONMENT_INDEX = "by_environment"

_serializer = TypeSerializer()


def lock_key(environment: str) -> dict[str, str]:
    return {"pk": f"lock#{environment}", "sk": "lock"}


def record_key(release_id: str) -> dict[str, str]:
    return {"pk": f"release#{release_id}", "sk": "record"}


def _dynamo(value: Any) -> Any:
    """Plain JSON values as DynamoDB accepts them (numbers as Decimal)."""
    return json.loads(json.dumps(value, default=str), parse_float=Decimal)


def _typed(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in _dynamo(item).items()}


def _event_item(
    release_id: str, transition: str, summary: str, actor: str, detail: dict[str, Any] | None
) -> dict[str, Any]:
    at = iso(utc_now())
    return {
        "pk": f"release#{release_id}",
        "sk": f"event#{at}#{secrets.token_hex(3)}",
        "at": at,
        "transition": transition,
        "summary": summary,
        "actor": actor,
        "detail": detail or {},
    }


def table(settings: Settings) -> Any:
    return resource("dynamodb").Table(settings.table_name)


class RecordInput(BaseModel):
    """RecordReleaseStarted receives the state; RecordReleaseAborted `release` and the caught `failure`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    release: Release
    failure: Failure | None = None


def start(settings: Settings, release: Release) -> Recorded:
    """Create the release record and its first audit event in one transaction (idempotent on retry)."""
    release_id = release.release_id
    record = {
        **record_key(release_id),
        "gsi1pk": f"env#{settings.environment}",
        "gsi1sk": release.started_at,
        "release_id": release_id,
        "environment": settings.environment,
        "version": release.version,
        "artifact": release.artifact.model_dump(),
        "strategy": release.strategy.model_dump(exclude_none=True),
        "dry_run": release.dry_run,
        "routing": release.routing,
        "approval": release.approval,
        "configuration": release.configuration,
        "requested_by": release.requested_by,
        "execution_arn": release.execution_arn,
        "started_at": release.started_at,
        "status": RUNNING,
    }
    summary = f"release {release_id} of version {release.version} started by {release.requested_by}"
    event = _event_item(
        release_id, "ReleaseStarted", summary, release.requested_by, {"dry_run": release.dry_run}
    )
    try:
        client("dynamodb").transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": settings.table_name,
                        "Item": _typed(record),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Put": {"TableName": settings.table_name, "Item": _typed(event)}},
            ]
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        existing = get(settings, release_id)
        if existing is None:
            raise
        if existing.get("execution_arn") != release.execution_arn:
            raise InvalidRelease(
                f"release_id {release_id} was already used by execution {existing.get('execution_arn')}"
            ) from None
        logger.info("release record already written by an earlier attempt", extra={"release_id": release_id})
        return Recorded(recorded=False)
    notify.publish(settings, release, "ReleaseStarted", summary)
    return Recorded(recorded=True)


def get(settings: Settings, release_id: str) -> dict[str, Any] | None:
    item = table(settings).get_item(Key=record_key(release_id), ConsistentRead=True).get("Item")
    return dict(item) if item else None


def events(settings: Settings, release_id: str) -> list[dict[str, Any]]:
    """The audit trail of one release, oldest first."""
    response = table(settings).query(
        KeyConditionExpression=Key("pk").eq(f"release#{release_id}") & Key("sk").begins_with("event#"),
        ConsistentRead=True,
    )
    return list(response.get("Items", []))


def transition(
    settings: Settings,
    release: ReleaseRef,
    name: str,
    summary: str,
    *,
    detail: dict[str, Any] | None = None,
    updates: dict[str, Any] | None = None,
    remove: tuple[str, ...] = (),
    actor: str = "release-state-machine",
    publish: bool = True,
) -> None:
    """Audit one transition, update the record, and notify (unless `publish` is False)."""
    release_id = release.release_id
    tbl = table(settings)
    tbl.put_item(Item=_dynamo(_event_item(release_id, name, summary, actor, detail)))
    if updates:
        names = {f"#a{i}": key for i, key in enumerate(updates)}
        values = {f":v{i}": value for i, value in enumerate(_dynamo(updates).values())}
        expression = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(updates)))
        if remove:
            names.update({f"#r{i}": key for i, key in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        tbl.update_item(
            Key=record_key(release_id),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    if publish:
        notify.publish(settings, release, name, summary, detail)


def finish(
    settings: Settings,
    release: ReleaseRef,
    status: str,
    summary: str,
    *,
    cause: str | None = None,
    detail: dict[str, Any] | None = None,
    actor: str = "release-state-machine",
) -> None:
    """Record the outcome (once; a later retry with the same outcome changes nothing)."""
    updates: dict[str, Any] = {"status": status, "ended_at": iso(utc_now()), "outcome_summary": summary}
    if cause:
        updates["cause"] = cause[:2000]
    # A pending approval token is useless once the release ended.
    transition(
        settings,
        release,
        status,
        summary,
        detail=detail,
        updates=updates,
        remove=("approval_token",),
        actor=actor,
    )


def list_releases(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The environment's releases, newest first."""
    response = table(settings).query(
        IndexName=ENVIRONMENT_INDEX,
        KeyConditionExpression=Key("gsi1pk").eq(f"env#{settings.environment}"),
        ScanIndexForward=False,
        Limit=limit,
    )
    return list(response.get("Items", []))


def abort(settings: Settings, release: Release, failure: Failure) -> Recorded:
    """Record ABORTED when the release failed before anything changed.

    The record may not exist (the failure may be the record write itself); then there is no
    record to correct. An attempt that wrote the record and then timed out leaves it RUNNING,
    which this turns into the outcome.
    """
    existing = get(settings, release.release_id)
    if existing is None or existing.get("status") in TERMINAL_STATUSES:
        return Recorded(recorded=False)
    summary = f"release {release.release_id} aborted before any change: {failure.error}"
    finish(settings, release, ABORTED, summary, cause=failure.cause or None)
    return Recorded(recorded=True)


@task_handler
@event_model(RecordInput)
def handler(event: RecordInput, context: Any) -> dict[str, Any]:
    """States `RecordReleaseStarted` and, with `failure`, `RecordReleaseAborted`."""
    if event.failure is not None:
        return abort(Settings.from_env(), event.release, event.failure).model_dump()
    return start(Settings.from_env(), event.release).model_dump()
