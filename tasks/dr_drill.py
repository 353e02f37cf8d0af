"""The DR drill's Lambda steps: restore a backup into a temporary replication group and prove it.

The state machine (state_machines/dr_drill.py) calls `handler` with `{"step": ..., ...state}`:

  prepare         validate the request; drill id, temporary group id, lock expiry, options
  pick_snapshot   the named snapshot, or the newest one the backup task took (with a manifest)
  restore         CreateReplicationGroup from the snapshot, shaped like the live group
  check_restore   DescribeReplicationGroups: status, endpoint, next wait (back-off), attempts
  test_failover   staging only: TestFailover on the temporary group (exercises Multi-AZ failover)
  delete          DeleteReplicationGroup of the temporary group (idempotent; busy -> retried)
  record          RTO/RPO, outcome in the release table, metrics, notice

`verify_handler` (inside the VPC) compares the restored group with the snapshot's manifest.

RTO = restore requested -> temporary group available (the time to get the data back).
RPO = snapshot time -> drill start (how much data a restore from this snapshot would lose).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from contracts import names
from tasks.backup import find_snapshot, manifest_key, own_snapshots, read_manifest
from tasks.common import client, iso, logger, parse_time, resource, task_handler, utc_now
from tasks.errors import (
    InvalidDrill,
    NoSnapshot,
    RestoreFailed,
    RestoreTimedOut,
    TemporaryGroupBusy,
    VerificationFailed,
)
from tasks.operations import OpsContext
from tasks.settings import DrillSettings

DRILL_TYPES = ("snapshot-restore",)
LOCK_HOURS = 6
FIRST_WAIT_SECONDS = 60
MAX_WAIT_SECONDS = 300
MAX_RESTORE_CHECKS = 30  # 60+120+240+300*27 s: about 2.3 h, far beyond a normal restore
_DRILL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")


# -- steps ------------------------------------------------------------------------------------


def prepare(event: Mapping[str, Any], settings: DrillSettings) -> dict[str, Any]:
    request = dict(event.get("request") or {})
    drill_type = request.get("type", "snapshot-restore")
    if drill_type not in DRILL_TYPES:
        raise InvalidDrill(f"type: {drill_type!r} is not one of {', '.join(DRILL_TYPES)}")
    drill_id = str(request.get("drill_id") or event.get("execution_name") or "")
    if not _DRILL_ID.match(drill_id):
        raise InvalidDrill(f"drill_id: {drill_id!r} must be 1-40 letters, digits or dashes")
    failover = bool(request.get("failover", settings.environment == "staging"))
    if failover and settings.environment == "production":
        raise InvalidDrill("failover: TestFailover is only drilled in staging")
    snapshot = request.get("snapshot")
    if snapshot is not None and not isinstance(snapshot, str):
        raise InvalidDrill("snapshot: must be a snapshot name")
    started_at = str(event.get("started_at") or iso(utc_now()))
    # ElastiCache ids: at most 40 characters, start with a letter, no double dashes.
    suffix = re.sub(r"-+", "-", drill_id.lower())[-28:].strip("-")
    temp = f"{names.temporary_group_prefix(settings.environment)}{suffix}".rstrip("-")
    return {
        "drill_id": drill_id,
        "type": drill_type,
        "environment": settings.environment,
        "requested_by": str(request.get("requested_by") or "schedule"),
        "snapshot": snapshot,
        "failover": failover,
        "temp_group_id": temp,
        "started_at": started_at,
        "execution_arn": event.get("execution_arn"),
        "lock_expires_at": iso(parse_time(started_at) + timedelta(hours=LOCK_HOURS)),
    }


def pick_snapshot(drill: Mapping[str, Any], settings: DrillSettings) -> dict[str, Any]:
    elasticache, s3 = client("elasticache"), client("s3")
    name = drill.get("snapshot")
    if name:
        snapshot = find_snapshot(elasticache, name)
        if snapshot is None or snapshot.get("SnapshotStatus") != "available":
            raise NoSnapshot(f"snapshot {name} is not available")
    else:
        candidates = [
            s
            for s in own_snapshots(elasticache, settings.backup_settings())
            if s.get("SnapshotStatus") == "available"
        ]
        if not candidates:
            raise NoSnapshot(f"no available backup snapshot of {settings.replication_group_id}")
        snapshot = candidates[-1]
        name = snapshot["SnapshotName"]
    try:
        manifest = read_manifest(s3, settings.bucket, name)
    except ClientError as exc:
        raise NoSnapshot(
            f"snapshot {name} has no manifest at s3://{settings.bucket}/{manifest_key(name)}"
        ) from exc
    node_times = [
        n["SnapshotCreateTime"] for n in snapshot.get("NodeSnapshots", []) if n.get("SnapshotCreateTime")
    ]
    taken_at = iso(parse_time(max(node_times))) if node_times else str(manifest["taken_at"])
    return {
        "name": name,
        "taken_at": taken_at,
        "manifest_key": manifest_key(name),
        "expected_keys": int(manifest.get("total_keys", 0)),
    }


def restore(drill: Mapping[str, Any], snapshot: Mapping[str, Any], settings: DrillSettings) -> dict[str, Any]:
    elasticache = client("elasticache")
    live = elasticache.describe_replication_groups(ReplicationGroupId=settings.replication_group_id)[
        "ReplicationGroups"
    ][0]
    kwargs: dict[str, Any] = {
        "ReplicationGroupId": drill["temp_group_id"],
        "ReplicationGroupDescription": f"DR drill {drill['drill_id']}: restore of {snapshot['name']} (temporary)",
        "SnapshotName": snapshot["name"],
        "CacheNodeType": settings.node_type or live.get("CacheNodeType"),
        # Two nodes: enough for TestFailover, and the drill measures a realistic restore.
        "NumCacheClusters": 2,
        "AutomaticFailoverEnabled": True,
        "MultiAZEnabled": True,
        "CacheSubnetGroupName": settings.subnet_group,
        "SecurityGroupIds": list(settings.security_group_ids),
        "Port": settings.port,
        "TransitEncryptionEnabled": True,
        "AtRestEncryptionEnabled": True,
        "SnapshotRetentionLimit": 0,
        "Tags": [
            {"Key": "Environment", "Value": settings.environment},
            {"Key": "DrDrill", "Value": drill["drill_id"]},
        ],
    }
    if live.get("Engine"):
        kwargs["Engine"] = live["Engine"]
    if settings.kms_key_id:
        kwargs["KmsKeyId"] = settings.kms_key_id
    if settings.auth_secret_arn:
        kwargs["AuthToken"] = _auth_token(settings.auth_secret_arn)
    try:
        elasticache.create_replication_group(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code != "ReplicationGroupAlreadyExists":  # a retried step: the group is ours
            raise RestoreFailed(
                f"CreateReplicationGroup {drill['temp_group_id']} from {snapshot['name']}: "
                f"{code}: {exc.response.get('Error', {}).get('Message', '')}"
            ) from exc
    return {
        "group_id": drill["temp_group_id"],
        "requested_at": iso(utc_now()),
        "status": "creating",
        "attempts": 0,
        "wait_seconds": FIRST_WAIT_SECONDS,
    }


def _auth_token(secret_arn: str) -> str:
    value = client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    return str(json.loads(value)[names.REDIS_AUTH_SECRET_FIELD])


def check_restore(restore_state: Mapping[str, Any], max_checks: int = MAX_RESTORE_CHECKS) -> dict[str, Any]:
    group_id = restore_state["group_id"]
    try:
        group = client("elasticache").describe_replication_groups(ReplicationGroupId=group_id)[
            "ReplicationGroups"
        ][0]
    except ClientError as exc:
        raise RestoreFailed(f"temporary group {group_id} disappeared: {exc}") from exc
    status = str(group.get("Status", "unknown"))
    attempts = int(restore_state.get("attempts", 0)) + 1
    if status in ("create-failed", "deleting", "deleted"):
        raise RestoreFailed(f"temporary group {group_id} is {status}")
    result = {
        **restore_state,
        "status": status,
        "attempts": attempts,
        "wait_seconds": min(int(restore_state.get("wait_seconds", FIRST_WAIT_SECONDS)) * 2, MAX_WAIT_SECONDS),
    }
    if status == "available":
        endpoint = _endpoint(group)
        result.update(available_at=iso(utc_now()), endpoint=endpoint["Address"], port=int(endpoint["Port"]))
    elif attempts >= max_checks:
        raise RestoreTimedOut(f"temporary group {group_id} still {status} after {attempts} checks")
    return result


def _endpoint(group: Mapping[str, Any]) -> dict[str, Any]:
    for node_group in group.get("NodeGroups", []):
        if node_group.get("PrimaryEndpoint"):
            return dict(node_group["PrimaryEndpoint"])
    if group.get("ConfigurationEndpoint"):
        return dict(group["ConfigurationEndpoint"])
    raise RestoreFailed(f"temporary group {group.get('ReplicationGroupId')} is available without an endpoint")


def test_failover(drill: Mapping[str, Any]) -> dict[str, Any]:
    group = client("elasticache").describe_replication_groups(ReplicationGroupId=drill["temp_group_id"])[
        "ReplicationGroups"
    ][0]
    node_group = group["NodeGroups"][0]["NodeGroupId"]
    response = client("elasticache").test_failover(
        ReplicationGroupId=drill["temp_group_id"], NodeGroupId=node_group
    )
    return {
        "node_group": node_group,
        "requested_at": iso(utc_now()),
        "status": str(response["ReplicationGroup"].get("Status", "unknown")),
    }


def delete(drill: Mapping[str, Any]) -> dict[str, Any]:
    group_id = drill["temp_group_id"]
    elasticache = client("elasticache")
    try:
        group = elasticache.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ReplicationGroupNotFoundFault":
            return {"group_id": group_id, "deleted": True, "existed": False}
        raise
    status = group.get("Status")
    if status in ("deleting", "deleted"):
        return {"group_id": group_id, "deleted": True, "existed": True}
    if status in ("creating", "modifying", "snapshotting"):
        raise TemporaryGroupBusy(f"temporary group {group_id} is {status}; deletion retried")
    try:
        elasticache.delete_replication_group(ReplicationGroupId=group_id, RetainPrimaryCluster=False)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidReplicationGroupState":
            raise TemporaryGroupBusy(f"temporary group {group_id}: {exc}") from exc
        raise
    return {"group_id": group_id, "deleted": True, "existed": True}


def record(state: Mapping[str, Any], settings: DrillSettings, ops: OpsContext) -> dict[str, Any]:
    drill = state["drill"]
    failure = state.get("failure")
    cleanup = state.get("cleanup") or {}
    restore_state = state.get("restore") or {}
    snapshot = state.get("snapshot") or {}
    verify = state.get("verify") or {}
    rto = rpo = None
    if restore_state.get("available_at"):
        rto = (
            parse_time(restore_state["available_at"]) - parse_time(restore_state["requested_at"])
        ).total_seconds()
    if snapshot.get("taken_at"):
        rpo = (parse_time(drill["started_at"]) - parse_time(snapshot["taken_at"])).total_seconds()
    cleaned = bool(cleanup.get("deleted"))
    outcome = "SUCCEEDED" if not failure and verify.get("passed") and cleaned else "FAILED"
    result = {
        "drill_id": drill["drill_id"],
        "type": drill["type"],
        "outcome": outcome,
        "snapshot": snapshot.get("name"),
        "rto_seconds": rto,
        "rpo_seconds": rpo,
        "verification": {
            k: verify.get(k)
            for k in ("passed", "sample_match_rate", "restored_keys", "expected_keys", "count_mismatches")
        }
        if verify
        else None,
        "temporary_group": drill["temp_group_id"],
        "temporary_group_deleted": cleaned,
        "failover_tested": bool(state.get("failover")),
        "failure": failure,
        "finished_at": iso(utc_now()),
    }
    metrics: dict[str, tuple[float, str]] = {
        "DrDrillSucceeded" if outcome == "SUCCEEDED" else "DrDrillFailed": (1, "Count")
    }
    if rto is not None:
        metrics["DrDrillRtoSeconds"] = (rto, "Seconds")
    if rpo is not None:
        metrics["DrDrillRpoSeconds"] = (rpo, "Seconds")
    ops.put_metrics(metrics)
    if settings.table_name:
        item = {
            "pk": f"drill#{drill['drill_id']}",
            "sk": "record",
            "kind": "dr-drill",
            "environment": settings.environment,
            "started_at": drill["started_at"],
            "requested_by": drill.get("requested_by"),
            "execution_arn": drill.get("execution_arn"),
            **result,
        }
        resource("dynamodb").Table(settings.table_name).put_item(Item=_dynamo(item))
    summary = (
        f"{outcome}: restore of {result['snapshot']} RTO {rto:.0f}s RPO {rpo:.0f}s"
        if outcome == "SUCCEEDED"
        else f"{outcome}: {(failure or {}).get('Error', 'verification')}"
        + ("" if cleaned else f"; temporary group {drill['temp_group_id']} NOT deleted: delete it by hand")
    )
    ops.notify("dr drill", summary, {**result, "runbook": "runbooks/dr-drill.md"})
    return result


def _dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_dynamo(v) for v in value]
    return value


STEPS = ("prepare", "pick_snapshot", "restore", "check_restore", "test_failover", "delete", "record")


@task_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    step = event.get("step")
    settings = DrillSettings.from_env()
    if step == "prepare":
        return prepare(event, settings)
    if step == "record":
        return record(event["state"], settings, OpsContext.of(settings))
    drill = event["drill"]
    if step == "pick_snapshot":
        return pick_snapshot(drill, settings)
    if step == "restore":
        return restore(drill, event["snapshot"], settings)
    if step == "check_restore":
        return check_restore(event["restore"])
    if step == "test_failover":
        return test_failover(drill)
    if step == "delete":
        return delete(drill)
    raise InvalidDrill(f"step: {step!r} is not one of {', '.join(STEPS)}")


@task_handler
def verify_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Inside the VPC: the restored group (TLS, same AUTH token) against the snapshot's manifest."""
    from service.redis_client import get_redis
    from tasks.manifest import verify_manifest

    settings = DrillSettings.from_env()
    manifest = read_manifest(client("s3"), settings.bucket, event["snapshot"]["name"])
    restore_state = event["restore"]
    if os.environ.get("REDIS_URL"):
        # The sandbox has one Redis server; it stands in for the restored group.
        redis_client = get_redis()
    else:
        env = {
            **os.environ,
            "REDIS_HOST": restore_state["endpoint"],
            "REDIS_PORT": str(restore_state["port"]),
            "REDIS_TLS": "true",
        }
        redis_client = get_redis(env)
    report = verify_manifest(redis_client, manifest)
    logger.info("drill verification", extra={"verification": report})
    if not report["passed"]:
        raise VerificationFailed(
            f"restored {report['restored_keys']}/{report['expected_keys']} keys, sample match "
            f"{report['sample_match_rate']:.2%}, count mismatches {report['count_mismatches']}"
        )
    return report
