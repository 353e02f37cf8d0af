"""The daily backup against moto (ElastiCache snapshots, S3, CloudWatch, SNS) and a real Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import redis

from tasks import backup
from tasks.manifest import build_manifest, namespace_of, verify_manifest
from tests.support.ops_world import BUCKET, COPY_BUCKET, COPY_REGION, GROUP, REGION, lambda_context


def _fill(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url)
    for i in range(500):
        client.set(f"cache:v1:snap:chan-{i}", json.dumps({"i": i}))
    for i in range(40):
        client.hset(f"conn:c{i}", mapping={"endpoint": "https://x", "at": str(i)})
        client.sadd(f"chan:chan-{i % 5}", f"c{i}")
    client.zadd("cache:v1:top", {"a": 1.5, "b": 2})
    client.rpush("cache:v1:recent", "x", "y")
    return client


context = lambda_context


def test_namespaces() -> None:
    assert namespace_of("cache:v3:snap:x") == "cache:v3"
    assert namespace_of("cache:dryrun:r1:x") == "cache:dryrun"
    assert namespace_of("conn:abc") == "conn"
    assert namespace_of("plain") == "(none)"


def test_manifest_counts_and_verifies_same_data(redis_url: str) -> None:
    client = _fill(redis_url)
    manifest = build_manifest(client, modulus=4)
    assert manifest["key_counts"] == {"cache:v1": 502, "chan": 5, "conn": 40}
    assert manifest["sample"] and all(not k.startswith(("conn:", "chan:")) for k in manifest["sample"])
    # Volatile namespaces may change without failing verification; data may not.
    client.delete("conn:c1", "conn:c2")
    report = verify_manifest(client, manifest)
    assert report["passed"] and report["sample_match_rate"] == 1.0 and report["sample_checksum_equal"]
    victim = next(iter(manifest["sample"]))
    client.set(victim, "tampered")
    report = verify_manifest(client, manifest, min_sample_match=1.0)
    assert not report["passed"] and report["sample_matched"] == report["sample_size"] - 1


def test_verify_reports_missing_namespace(redis_url: str) -> None:
    client = _fill(redis_url)
    manifest = build_manifest(client, modulus=4)
    for key in client.scan_iter(match="cache:v1:*"):
        client.delete(key)
    report = verify_manifest(client, manifest)
    assert not report["passed"]
    assert report["count_mismatches"] == {"cache:v1": {"expected": 502, "restored": 0}}
    assert report["sample_missing"] == report["sample_size"]


def test_backup_snapshot_manifest_export_copy(ops_world, clock, redis_url, monkeypatch) -> None:
    _fill(redis_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("BACKUP_COPY_BUCKET", COPY_BUCKET)
    monkeypatch.setenv("BACKUP_COPY_REGION", COPY_REGION)
    result = backup.handler({}, context())
    name = f"{GROUP}-2026-03-10"
    assert result["snapshot"] == name and result["created"] and result["exported"] == [name]
    assert name in ops_world.snapshots()
    s3 = boto3.client("s3", region_name=REGION)
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=f"manifests/{name}.json")["Body"].read())
    assert manifest["snapshot_name"] == name and manifest["total_keys"] == 547
    assert manifest["taken_at"] == "2026-03-10T03:00:00.000Z"
    assert ops_world.export.requests == [
        {"SourceSnapshotName": name, "TargetSnapshotName": name, "TargetBucket": BUCKET}
    ]
    copied = {
        o["Key"]
        for o in boto3.client("s3", region_name=COPY_REGION).list_objects_v2(Bucket=COPY_BUCKET)["Contents"]
    }
    assert copied == {f"manifests/{name}.json", f"{name}-0001.rdb"}
    assert ops_world.metric("BackupSucceeded") == [1.0]
    assert ops_world.metric("BackupKeys") == [547.0]
    assert ops_world.notices() == []


def test_rerun_same_day_is_idempotent(ops_world, clock, redis_url, monkeypatch) -> None:
    _fill(redis_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    backup.handler({}, context())
    again = backup.handler({}, context())
    assert not again["created"] and again["exported"] == [] and again["total_keys"] == 547
    assert len(ops_world.export.requests) == 1


def test_prunes_own_snapshots_past_retention_only(ops_world, clock, redis_url, monkeypatch) -> None:
    _fill(redis_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    ec = boto3.client("elasticache", region_name=REGION)
    start = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    for day in range(10):
        clock[0] = start + timedelta(days=day)
        backup.handler({}, context())
    ec.create_snapshot(ReplicationGroupId=GROUP, SnapshotName="before-upgrade-keep-me")
    clock[0] = start + timedelta(days=10)
    result = backup.handler({}, context())
    # Retention 7 days on 2026-03-11: snapshots dated before 2026-03-04 go.
    assert result["pruned"] == [f"{GROUP}-2026-03-03"]
    remaining = ops_world.snapshots()
    assert "before-upgrade-keep-me" in remaining
    assert [s for s in remaining if s.startswith(GROUP)] == [f"{GROUP}-2026-03-{d:02d}" for d in range(4, 12)]


def test_failure_publishes_metric_and_notice(ops_world, clock, redis_url, monkeypatch) -> None:
    _fill(redis_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("REPLICATION_GROUP_ID", "staging-realtime-missing")
    with pytest.raises(Exception, match="ReplicationGroupNotFound"):
        backup.handler({}, context())
    assert ops_world.metric("BackupFailed") == [1.0]
    [notice] = ops_world.notices()
    assert notice["kind"] == "backup failed" and "staging-realtime-missing" in notice["summary"]
    assert notice["subject"].startswith("[staging] backup failed")


def test_foreign_snapshot_with_todays_name_is_refused(ops_world, clock, redis_url, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    boto3.client("elasticache", region_name=REGION).create_snapshot(
        ReplicationGroupId=GROUP, SnapshotName=f"{GROUP}-2026-03-10"
    )
    with pytest.raises(RuntimeError, match="without its manifest"):
        backup.handler({}, context())


def test_settings_errors_name_the_variable(monkeypatch) -> None:
    from tasks.operations import OperationsSettingsError

    with pytest.raises(OperationsSettingsError, match="BACKUP_BUCKET"):
        backup.BackupSettings.from_env({"ENVIRONMENT": "staging", "REPLICATION_GROUP_ID": GROUP})
    with pytest.raises(ValueError, match="BACKUP_COPY_REGION"):
        backup.BackupSettings.from_env(
            {
                "ENVIRONMENT": "staging",
                "REPLICATION_GROUP_ID": GROUP,
                "BACKUP_BUCKET": BUCKET,
                "BACKUP_COPY_BUCKET": COPY_BUCKET,
            }
        )


def test_wait_available_backs_off_and_stops_at_deadline() -> None:
    class Pending:
        def describe_snapshots(self, SnapshotName: str) -> dict:
            return {"Snapshots": [{"SnapshotName": SnapshotName, "SnapshotStatus": "creating"}]}

    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    status = backup.wait_available(Pending(), "x", deadline=200.0, sleep=sleep, monotonic=lambda: now[0])
    assert status == "creating"
    assert sleeps == [5.0, 10.0, 20.0, 30.0, 30.0, 30.0, 30.0, 30.0]
