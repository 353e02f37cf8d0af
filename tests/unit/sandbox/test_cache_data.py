"""ElastiCache's data in the sandbox: snapshots hold the server's data, restores start a server
loaded from it; Cost Explorer answers from the seeded history. Through moto's HTTP API, as the
functions call it, with a real Redis-compatible server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import boto3
import pytest
import redis
from botocore.exceptions import ClientError

from orchestrator.sandbox import emulation
from orchestrator.sandbox.cache_data import CacheData
from orchestrator.sandbox.cost_data import CostData
from orchestrator.sandbox.redis_server import RedisServer

REGION = "eu-west-1"
GROUP = "stage-cache"
TODAY = date(2026, 12, 2)


@pytest.fixture(scope="module")
def live() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def cache(live: RedisServer) -> Iterator[CacheData]:
    data = CacheData(live, {GROUP})
    yield data
    data.stop()


@pytest.fixture(scope="module")
def costs() -> CostData:
    return CostData(lambda: TODAY)


@pytest.fixture(scope="module")
def aws(cache: CacheData, costs: CostData) -> Iterator[Callable[[str], Any]]:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    emulation.install(cache=cache, costs=costs)
    url = f"http://127.0.0.1:{moto.get_host_and_port()[1]}"
    try:
        yield lambda service: boto3.client(
            service,
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 - moto accepts any
        )
    finally:
        emulation.uninstall()
        moto.stop()


def _eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _status(ec: Any, group: str) -> str | None:
    try:
        return str(ec.describe_replication_groups(ReplicationGroupId=group)["ReplicationGroups"][0]["Status"])
    except ClientError:
        return None


def test_a_snapshot_holds_the_data_and_a_restore_serves_it(
    aws: Callable[[str], Any], live: RedisServer, cache: CacheData
) -> None:
    ec, s3 = aws("elasticache"), aws("s3")
    source = redis.Redis(port=live.port)
    source.flushall()
    for n in range(50):
        source.set(f"cache:v1:snap:{n}", n)
    source.sadd("chan:price:eth", "c1", "c2")
    ec.create_replication_group(
        ReplicationGroupId=GROUP,
        ReplicationGroupDescription="stage",
        NumCacheClusters=2,
        CacheNodeType="cache.t4g.small",
    )
    ec.create_snapshot(ReplicationGroupId=GROUP, SnapshotName="snap-1")
    source.set("written-after-the-snapshot", 1)

    s3.create_bucket(Bucket="backups", CreateBucketConfiguration={"LocationConstraint": REGION})
    ec.copy_snapshot(SourceSnapshotName="snap-1", TargetSnapshotName="snap-1", TargetBucket="backups")
    exported = _eventually(
        lambda: [o["Key"] for o in s3.list_objects_v2(Bucket="backups").get("Contents", [])]
    )
    assert exported == ["snap-1-0001.rdb"]
    body = s3.get_object(Bucket="backups", Key="snap-1-0001.rdb")["Body"].read()
    assert body.startswith(b"REDIS") and len(body) > 100

    ec.create_replication_group(
        ReplicationGroupId="drill-1",
        ReplicationGroupDescription="restore",
        SnapshotName="snap-1",
        NumCacheClusters=2,
    )
    assert _status(ec, "drill-1") in ("creating", "available")
    assert _eventually(lambda: _status(ec, "drill-1") == "available")
    group = ec.describe_replication_groups(ReplicationGroupId="drill-1")["ReplicationGroups"][0]
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]
    assert (endpoint["Address"], endpoint["Port"]) == ("127.0.0.1", cache.restore_port)
    restored = redis.Redis(host=endpoint["Address"], port=endpoint["Port"])
    assert restored.dbsize() == 51 and restored.smembers("chan:price:eth") == {b"c1", b"c2"}
    assert restored.get("written-after-the-snapshot") is None  # what a restore of that snapshot loses

    # One restored group at a time: a second one cannot start.
    ec.create_replication_group(
        ReplicationGroupId="drill-2", ReplicationGroupDescription="r", SnapshotName="snap-1"
    )
    assert _eventually(lambda: _status(ec, "drill-2") == "create-failed")
    ec.delete_replication_group(ReplicationGroupId="drill-2")

    ec.delete_replication_group(ReplicationGroupId="drill-1")
    assert _status(ec, "drill-1") in ("deleting", None)
    assert _eventually(lambda: _status(ec, "drill-1") is None)
    assert cache.restored() == []
    with pytest.raises(redis.ConnectionError):
        restored.ping()


def test_a_restore_from_an_unknown_snapshot_is_refused(aws: Callable[[str], Any]) -> None:
    with pytest.raises(ClientError) as caught:
        aws("elasticache").create_replication_group(
            ReplicationGroupId="drill-3", ReplicationGroupDescription="r", SnapshotName="no-such-snapshot"
        )
    assert caught.value.response["Error"]["Code"] == "SnapshotNotFoundFault"


def test_cost_explorer_answers_from_the_seeded_history(aws: Callable[[str], Any], costs: CostData) -> None:
    costs.set_day(date(2026, 12, 1), {"Amazon ElastiCache": 31.5})
    answer = aws("ce").get_cost_and_usage(
        TimePeriod={"Start": "2026-11-30", "End": "2026-12-02"},
        Granularity="DAILY",
        Metrics=["UnblendedCost"],
        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}],
    )
    first, second = answer["ResultsByTime"]
    assert len(first["Groups"]) > 5
    assert second["Groups"] == [
        {"Keys": ["Amazon ElastiCache"], "Metrics": {"UnblendedCost": {"Amount": "31.5", "Unit": "USD"}}}
    ]
