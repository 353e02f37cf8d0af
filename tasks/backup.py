"""Daily backup: a manual snapshot named by date, its manifest, the S3 export, a copy, pruning.

Runs from an EventBridge Scheduler schedule, on top of ElastiCache's automatic snapshots
(those expire with the group; manual ones and the exports outlive it). One invocation:

1. manifest of the cache (key counts per namespace, sample digests; see tasks/manifest.py),
   written to `s3://<bucket>/manifests/<snapshot>.json` before the snapshot starts, so its
   counts are a lower bound of what the snapshot holds;
2. CreateSnapshot `<replication-group>-<yyyy-mm-dd>` (an existing one of that name is kept:
   the schedule may retry);
3. wait (bounded, with back-off) until it is available, then export it to the bucket
   (CopySnapshot with TargetBucket: ElastiCache writes `<snapshot>-<n>.rdb`) and write the
   marker `exports/<snapshot>.json`; a snapshot not ready in time is exported by the next run;
4. optional cross-region copy of manifests and exported objects to BACKUP_COPY_BUCKET in
   BACKUP_COPY_REGION (objects already there are skipped);
5. delete this task's manual snapshots older than BACKUP_RETENTION_DAYS (automatic snapshots
   and other manual ones are never touched; S3 objects age out by the bucket's lifecycle).

Success publishes BackupSucceeded / BackupKeys / BackupDurationSeconds / SnapshotsPruned
(dimension Environment); any failure publishes BackupFailed, notifies the operations topic
and re-raises, so the schedule's retry and DLQ see it too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from service.redis_client import get_redis
from tasks.common import client, iso, logger, task_handler, utc_now
from tasks.manifest import build_manifest
from tasks.operations import OpsContext
from tasks.settings import BackupSettings

MANIFEST_PREFIX = "manifests/"
EXPORT_MARKER_PREFIX = "exports/"
# Leave this much of the invocation for the export, the copy, pruning and the metrics.
SAFETY_MARGIN_SECONDS = 120.0
POLL_FIRST_SECONDS = 5.0
POLL_MAX_SECONDS = 30.0


def manifest_key(snapshot_name: str) -> str:
    return f"{MANIFEST_PREFIX}{snapshot_name}.json"


def export_marker_key(snapshot_name: str) -> str:
    return f"{EXPORT_MARKER_PREFIX}{snapshot_name}.json"


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def _put_json(s3: Any, bucket: str, key: str, body: Mapping[str, Any]) -> None:
    # The bucket's default encryption (SSE-KMS with the backup key) applies; no per-call override.
    s3.put_object(
        Bucket=bucket, Key=key, Body=json.dumps(body, sort_keys=True).encode(), ContentType="application/json"
    )


def read_manifest(s3: Any, bucket: str, snapshot_name: str) -> dict[str, Any]:
    body = s3.get_object(Bucket=bucket, Key=manifest_key(snapshot_name))["Body"].read()
    return dict(json.loads(body))


def find_snapshot(elasticache: Any, name: str) -> dict[str, Any] | None:
    try:
        found = elasticache.describe_snapshots(SnapshotName=name)["Snapshots"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "SnapshotNotFoundFault":
            return None
        raise
    return dict(found[0]) if found else None


def own_snapshots(elasticache: Any, settings: BackupSettings) -> list[dict[str, Any]]:
    """This task's manual snapshots of the group (named `<group>-<date>`), oldest first."""
    snapshots: list[dict[str, Any]] = []
    for page in elasticache.get_paginator("describe_snapshots").paginate(
        ReplicationGroupId=settings.replication_group_id, SnapshotSource="user"
    ):
        snapshots += [s for s in page["Snapshots"] if settings.name_pattern.match(s["SnapshotName"])]
    return sorted(snapshots, key=lambda s: s["SnapshotName"])


def wait_available(
    elasticache: Any,
    name: str,
    deadline: float,
    *,
    sleep: Callable[[float], None],
    monotonic: Callable[[], float],
) -> str:
    """Poll with back-off until the snapshot is available or the deadline passes; its last status."""
    delay = POLL_FIRST_SECONDS
    while True:
        snapshot = find_snapshot(elasticache, name)
        status = str(snapshot.get("SnapshotStatus", "missing")) if snapshot else "missing"
        if status in ("available", "failed", "missing") or monotonic() + delay > deadline:
            return status
        sleep(delay)
        delay = min(delay * 2, POLL_MAX_SECONDS)


def export(elasticache: Any, s3: Any, settings: BackupSettings, name: str) -> None:
    """CopySnapshot to the bucket (ElastiCache writes the .rdb objects itself), then the marker."""
    elasticache.copy_snapshot(SourceSnapshotName=name, TargetSnapshotName=name, TargetBucket=settings.bucket)
    _put_json(
        s3,
        settings.bucket,
        export_marker_key(name),
        {"snapshot": name, "bucket": settings.bucket, "requested_at": iso(utc_now())},
    )


def copy_cross_region(s3: Any, settings: BackupSettings, names: list[str]) -> int:
    """Copy manifests and exported objects of `names` to the copy bucket; returns objects copied."""
    if not (settings.copy_bucket and settings.copy_region):
        return 0
    target = client_in_region("s3", settings.copy_region)
    copied = 0
    for name in names:
        keys = [manifest_key(name)]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=f"{name}-"):
            keys += [obj["Key"] for obj in page.get("Contents", []) if obj["Key"].endswith(".rdb")]
        for key in keys:
            if not _exists(s3, settings.bucket, key) or _exists(target, settings.copy_bucket, key):
                continue
            # Managed copy: multipart for objects over 5 GB, server-side throughout.
            target.copy({"Bucket": settings.bucket, "Key": key}, settings.copy_bucket, key, SourceClient=s3)
            copied += 1
    return copied


def client_in_region(service: str, region: str) -> Any:
    import boto3

    from tasks.common import _CLIENT_CONFIG

    return boto3.client(service, region_name=region, config=_CLIENT_CONFIG)


def prune(elasticache: Any, settings: BackupSettings, now: datetime, keep: str) -> list[str]:
    cutoff = (now - timedelta(days=settings.retention_days)).date()
    deleted: list[str] = []
    for snapshot in own_snapshots(elasticache, settings):
        name = snapshot["SnapshotName"]
        match = settings.name_pattern.match(name)
        if name == keep or not match or snapshot.get("SnapshotStatus") not in ("available", "failed"):
            continue
        if datetime.strptime(match.group(1), "%Y-%m-%d").date() < cutoff:
            elasticache.delete_snapshot(SnapshotName=name)
            deleted.append(name)
    return deleted


def run_backup(
    settings: BackupSettings,
    redis_client: Any,
    *,
    time_budget_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    started = monotonic()
    deadline = started + max(0.0, time_budget_seconds - SAFETY_MARGIN_SECONDS)
    elasticache, s3 = client("elasticache"), client("s3")
    now = utc_now()
    name = settings.snapshot_name(now)

    created = False
    manifest: dict[str, Any] | None = None
    if find_snapshot(elasticache, name) is None:
        manifest = {
            **build_manifest(redis_client),
            "snapshot_name": name,
            "replication_group_id": settings.replication_group_id,
            "environment": settings.environment,
            "taken_at": iso(now),
        }
        _put_json(s3, settings.bucket, manifest_key(name), manifest)
        kwargs: dict[str, Any] = {
            "ReplicationGroupId": settings.replication_group_id,
            "SnapshotName": name,
            "Tags": [
                {"Key": "Environment", "Value": settings.environment},
                {"Key": "CreatedBy", "Value": "backup"},
            ],
        }
        if settings.kms_key_id:
            kwargs["KmsKeyId"] = settings.kms_key_id
        elasticache.create_snapshot(**kwargs)
        created = True
    elif not _exists(s3, settings.bucket, manifest_key(name)):
        raise RuntimeError(
            f"snapshot {name} exists without its manifest {manifest_key(name)}; "
            "it was not taken by this task (delete or rename it, then rerun)"
        )

    status = wait_available(elasticache, name, deadline, sleep=sleep, monotonic=monotonic)
    if status == "failed":
        raise RuntimeError(f"snapshot {name} failed (ElastiCache status 'failed')")

    exported: list[str] = []
    for snapshot in own_snapshots(elasticache, settings):
        if snapshot.get("SnapshotStatus") == "available" and not _exists(
            s3, settings.bucket, export_marker_key(snapshot["SnapshotName"])
        ):
            export(elasticache, s3, settings, snapshot["SnapshotName"])
            exported.append(snapshot["SnapshotName"])

    kept = [s["SnapshotName"] for s in own_snapshots(elasticache, settings)]
    copied = copy_cross_region(s3, settings, kept)
    pruned = prune(elasticache, settings, now, keep=name)
    if manifest is None:
        manifest = read_manifest(s3, settings.bucket, name)
    return {
        "snapshot": name,
        "created": created,
        "status": status,
        "exported": exported,
        "pending_export": [] if status == "available" else [name],
        "copied_objects": copied,
        "pruned": pruned,
        "total_keys": int(manifest.get("total_keys", 0)),
        "key_counts": manifest.get("key_counts", {}),
        "manifest": f"s3://{settings.bucket}/{manifest_key(name)}",
        "duration_seconds": round(monotonic() - started, 3),
    }


@task_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = BackupSettings.from_env()
    ops = OpsContext.of(settings)
    budget = context.get_remaining_time_in_millis() / 1000 if context is not None else 900.0
    try:
        result = run_backup(settings, get_redis(), time_budget_seconds=budget)
    except Exception as exc:
        logger.exception("backup failed")
        ops.put_metrics({"BackupFailed": (1, "Count")})
        ops.notify(
            "backup failed",
            f"{settings.replication_group_id}: {type(exc).__name__}: {exc}",
            {"replication_group_id": settings.replication_group_id},
        )
        raise
    ops.put_metrics(
        {
            "BackupSucceeded": (1, "Count"),
            "BackupKeys": (result["total_keys"], "Count"),
            "BackupDurationSeconds": (result["duration_seconds"], "Seconds"),
            "SnapshotsPruned": (len(result["pruned"]), "Count"),
        }
    )
    # One key: LogRecord reserves names such as `created`.
    logger.info("backup done", extra={"backup": result})
    return result
