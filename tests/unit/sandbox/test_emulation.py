"""The sandbox's emulations of AWS APIs moto lacks, called over HTTP as functions call them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from orchestrator.sandbox import emulation
from orchestrator.sandbox.emulation import EMULATION_POINTS, EmulationPoint, EmulationPointMoved, InvokeAnswer

REGION = "eu-west-1"


@pytest.mark.parametrize("point", EMULATION_POINTS, ids=lambda p: p.symbol)
def test_emulation_point_matches_pinned_moto(point: EmulationPoint) -> None:
    # If this fails, moto moved a symbol or now implements an emulated action: the message says which.
    point.check()


def test_moved_symbol_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.sqs.models import SQSBackend

    monkeypatch.delattr(SQSBackend, "list_dead_letter_source_queues")
    with pytest.raises(EmulationPointMoved, match=r"SQSBackend\.list_dead_letter_source_queues is gone"):
        emulation.install()
    assert not emulation.is_installed()


def test_moto_implementing_an_action_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.elasticache.responses import ElastiCacheResponse

    monkeypatch.setattr(ElastiCacheResponse, "test_failover", lambda self: None, raising=False)
    with pytest.raises(EmulationPointMoved, match="moto now implements .*test_failover"):
        emulation.check_emulation_points()


def _answer(name: str, qualifier: str | None, payload: bytes, kind: str) -> InvokeAnswer | None:
    if name not in ("routed", "routed-qualified"):
        return None
    event = json.loads(payload or b"{}")
    if event.get("fail"):
        return InvokeAnswer(
            json.dumps({"errorType": "Boom", "errorMessage": "asked to"}).encode(), "$LATEST", "Unhandled"
        )
    return InvokeAnswer(json.dumps({"echo": event, "qualifier": qualifier, "kind": kind}).encode(), "$LATEST")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    emulation.install(invoker=_answer)
    try:
        yield f"http://127.0.0.1:{moto.get_host_and_port()[1]}"
    finally:
        emulation.uninstall()
        moto.stop()


@pytest.fixture
def aws(server: str) -> Callable[[str], Any]:
    return lambda service: boto3.client(service, endpoint_url=server, region_name=REGION)


def _eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def _queues(sqs: Any, name: str, max_receive: int = 1) -> tuple[str, str, str]:
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    source = sqs.create_queue(
        QueueName=name,
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})
        },
    )["QueueUrl"]
    return source, dlq, dlq_arn


def _dead_letter(sqs: Any, source: str, bodies: list[str]) -> None:
    for body in bodies:
        sqs.send_message(
            QueueUrl=source,
            MessageBody=body,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "drill"}},
        )
    for _ in range(3):  # one receive each (maxReceiveCount 1); the next receive dead-letters them
        sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0)


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_move_task_redrives_the_dlq_to_its_source(aws: Callable[[str], Any]) -> None:
    sqs = aws("sqs")
    source, dlq, dlq_arn = _queues(sqs, "orders")
    _dead_letter(sqs, source, [f"m{i}" for i in range(12)])
    assert _depth(sqs, dlq) == 12 and _depth(sqs, source) == 0

    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]

    [task] = _eventually(
        lambda: [
            t for t in sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"] if t["Status"] == "COMPLETED"
        ]
    )
    assert task["ApproximateNumberOfMessagesMoved"] == 12
    assert task["ApproximateNumberOfMessagesToMove"] == 12
    assert "TaskHandle" not in task and "DestinationArn" not in task  # handle only while RUNNING
    assert task["SourceArn"] == dlq_arn and task["StartedTimestamp"] > 0
    assert handle
    assert _depth(sqs, dlq) == 0
    moved = []
    while batch := sqs.receive_message(
        QueueUrl=source, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        moved += batch
        for message in batch:
            sqs.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(m["Body"] for m in moved) == sorted(f"m{i}" for i in range(12))
    assert all(m["MessageAttributes"]["kind"]["StringValue"] == "drill" for m in moved)


def test_move_task_to_a_destination_with_a_rate_and_cancel(aws: Callable[[str], Any]) -> None:
    sqs = aws("sqs")
    source, dlq, dlq_arn = _queues(sqs, "slow")
    target = sqs.create_queue(QueueName="slow-target")["QueueUrl"]
    target_arn = sqs.get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    _dead_letter(sqs, source, [f"s{i}" for i in range(20)])

    handle = sqs.start_message_move_task(
        SourceArn=dlq_arn, DestinationArn=target_arn, MaxNumberOfMessagesPerSecond=20
    )
    running = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]
    assert running["Status"] == "RUNNING" and running["TaskHandle"] == handle["TaskHandle"]
    assert running["DestinationArn"] == target_arn and running["MaxNumberOfMessagesPerSecond"] == 20
    with pytest.raises(ClientError, match="UnsupportedOperation"):  # one active task per queue
        sqs.start_message_move_task(SourceArn=dlq_arn)

    time.sleep(0.2)
    moved = sqs.cancel_message_move_task(TaskHandle=handle["TaskHandle"])["ApproximateNumberOfMessagesMoved"]
    assert 0 < moved < 20
    task = _eventually(
        lambda: next(
            (
                t
                for t in sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
                if t["Status"] == "CANCELLED"
            ),
            None,
        )
    )
    assert task and _depth(sqs, target) == task["ApproximateNumberOfMessagesMoved"]
    assert _depth(sqs, dlq) == 20 - task["ApproximateNumberOfMessagesMoved"]
    assert _depth(sqs, source) == 0


def test_move_task_refuses_what_aws_refuses(aws: Callable[[str], Any]) -> None:
    sqs = aws("sqs")
    plain = sqs.create_queue(QueueName="plain")["QueueUrl"]
    plain_arn = sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    with pytest.raises(ClientError, match="UnsupportedOperation.*not configured as a dead-letter queue"):
        sqs.start_message_move_task(SourceArn=plain_arn)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        sqs.start_message_move_task(SourceArn=plain_arn + "-missing")
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        sqs.cancel_message_move_task(TaskHandle="no-such-task")
    assert sqs.list_message_move_tasks(SourceArn=plain_arn)["Results"] == []


def test_move_task_fails_when_the_source_queue_is_ambiguous(aws: Callable[[str], Any]) -> None:
    sqs = aws("sqs")
    first, dlq, dlq_arn = _queues(sqs, "first")
    sqs.create_queue(
        QueueName="second",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})},
    )
    _dead_letter(sqs, first, ["x"])
    sqs.start_message_move_task(SourceArn=dlq_arn)
    task = _eventually(
        lambda: next(
            (t for t in sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"] if t["Status"] == "FAILED"),
            None,
        )
    )
    assert task and "give DestinationArn" in task["FailureReason"]
    assert _depth(sqs, dlq) == 1


def _group(ec: Any, group_id: str, replicas: int = 1) -> None:
    ec.create_replication_group(
        ReplicationGroupId=group_id,
        ReplicationGroupDescription="cache",
        Engine="valkey",
        CacheNodeType="cache.t4g.small",
        NumNodeGroups=1,
        ReplicasPerNodeGroup=replicas,
        AutomaticFailoverEnabled=replicas > 0,
        Port=6390,
    )


def test_copy_snapshot_exports_rdb_objects_to_the_bucket(aws: Callable[[str], Any]) -> None:
    ec, s3 = aws("elasticache"), aws("s3")
    _group(ec, "cache-a")
    ec.create_snapshot(ReplicationGroupId="cache-a", SnapshotName="cache-a-2025-01-01")
    s3.create_bucket(Bucket="backups-a", CreateBucketConfiguration={"LocationConstraint": REGION})

    snapshot = ec.copy_snapshot(
        SourceSnapshotName="cache-a-2025-01-01",
        TargetSnapshotName="cache-a-2025-01-01",
        TargetBucket="backups-a",
    )["Snapshot"]

    assert snapshot["SnapshotName"] == "cache-a-2025-01-01" and snapshot["SnapshotStatus"] == "exporting"
    keys = _eventually(lambda: [o["Key"] for o in s3.list_objects_v2(Bucket="backups-a").get("Contents", [])])
    assert keys == ["cache-a-2025-01-01-0001.rdb"]
    assert s3.get_object(Bucket="backups-a", Key=keys[0])["Body"].read().startswith(b"REDIS")
    assert _eventually(
        lambda: (
            ec.describe_snapshots(SnapshotName="cache-a-2025-01-01")["Snapshots"][0]["SnapshotStatus"]
            == "available"
        )
    )


def test_copy_snapshot_needs_the_bucket_and_an_available_snapshot(aws: Callable[[str], Any]) -> None:
    ec = aws("elasticache")
    _group(ec, "cache-b")
    ec.create_snapshot(ReplicationGroupId="cache-b", SnapshotName="snap-b")
    with pytest.raises(ClientError, match=r"InvalidParameterValue.*no-such-bucket does not exist"):
        ec.copy_snapshot(
            SourceSnapshotName="snap-b", TargetSnapshotName="snap-b", TargetBucket="no-such-bucket"
        )
    with pytest.raises(ClientError, match="SnapshotNotFoundFault"):
        ec.copy_snapshot(SourceSnapshotName="missing", TargetSnapshotName="x", TargetBucket="no-such-bucket")
    copied = ec.copy_snapshot(SourceSnapshotName="snap-b", TargetSnapshotName="snap-b-copy")["Snapshot"]
    assert copied["SnapshotName"] == "snap-b-copy" and copied["SnapshotStatus"] == "available"
    assert {s["SnapshotName"] for s in ec.describe_snapshots(ReplicationGroupId="cache-b")["Snapshots"]} >= {
        "snap-b",
        "snap-b-copy",
    }
    with pytest.raises(ClientError, match="SnapshotAlreadyExistsFault"):
        ec.copy_snapshot(SourceSnapshotName="snap-b", TargetSnapshotName="snap-b-copy")


def test_test_failover_swaps_roles_through_modifying(aws: Callable[[str], Any]) -> None:
    ec = aws("elasticache")
    _group(ec, "cache-c")

    def roles() -> dict[str, str]:
        group = ec.describe_replication_groups(ReplicationGroupId="cache-c")["ReplicationGroups"][0]
        return {m["CacheClusterId"]: m["CurrentRole"] for m in group["NodeGroups"][0]["NodeGroupMembers"]}

    before = roles()
    group = ec.test_failover(ReplicationGroupId="cache-c", NodeGroupId="0001")["ReplicationGroup"]
    assert group["Status"] == "modifying"
    with pytest.raises(ClientError, match="InvalidReplicationGroupState"):
        ec.test_failover(ReplicationGroupId="cache-c", NodeGroupId="0001")
    assert _eventually(
        lambda: (
            ec.describe_replication_groups(ReplicationGroupId="cache-c")["ReplicationGroups"][0]["Status"]
            == "available"
        )
    )
    after = roles()
    assert sorted(before.values()) == sorted(after.values()) == ["primary", "replica"]
    assert before != after
    with pytest.raises(ClientError, match="NodeGroupNotFoundFault"):
        ec.test_failover(ReplicationGroupId="cache-c", NodeGroupId="0009")
    with pytest.raises(ClientError, match="ReplicationGroupNotFoundFault"):
        ec.test_failover(ReplicationGroupId="nope", NodeGroupId="0001")
    _group(ec, "cache-d", replicas=0)
    with pytest.raises(ClientError, match="TestFailoverNotAvailableFault"):
        ec.test_failover(ReplicationGroupId="cache-d", NodeGroupId="0001")


def test_num_cache_clusters_gives_the_group_its_replicas(aws: Callable[[str], Any]) -> None:
    ec = aws("elasticache")
    ec.create_replication_group(
        ReplicationGroupId="restored",
        ReplicationGroupDescription="drill",
        Engine="valkey",
        CacheNodeType="cache.t4g.small",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
    )
    group = ec.describe_replication_groups(ReplicationGroupId="restored")["ReplicationGroups"][0]
    roles = sorted(m["CurrentRole"] for m in group["NodeGroups"][0]["NodeGroupMembers"])
    assert roles == ["primary", "replica"] and len(group["MemberClusters"]) == 2
    assert (
        ec.test_failover(ReplicationGroupId="restored", NodeGroupId="0001")["ReplicationGroup"]["Status"]
        == "modifying"
    )


def _function(aws: Callable[[str], Any], name: str) -> str:
    role = aws("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return str(
        aws("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": archive.getvalue()},
        )["FunctionArn"]
    )


def test_sqs_mapping_is_stored_but_moto_does_not_deliver(aws: Callable[[str], Any]) -> None:
    sqs, lam = aws("sqs"), aws("lambda")
    _function(aws, "consumer")
    url = sqs.create_queue(QueueName="mapped")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="consumer", BatchSize=5)
    assert mapping["State"] == "Enabled"
    sqs.send_message(QueueUrl=url, MessageBody="stays")  # moto would try a Docker invoke here
    message = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["ApproximateReceiveCount"])[
        "Messages"
    ][0]
    assert message["Body"] == "stays"
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # nothing received it before
    assert lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)["State"] == "Disabled"
    assert lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Disabled"

    wanted = "0f0e0d0c-0b0a-4090-8070-605040302010"  # what the template's Ref of the mapping resolves to
    emulation.assign_mapping_uuid("123456789012", REGION, mapping["UUID"], wanted)
    moved = lam.get_event_source_mapping(UUID=wanted)
    assert (
        moved["EventSourceMappingArn"].endswith(f":event-source-mapping:{wanted}")
        and moved["State"] == "Disabled"
    )
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        lam.get_event_source_mapping(UUID=mapping["UUID"])


def test_invoke_reaches_the_sandbox_runtime(aws: Callable[[str], Any]) -> None:
    lam = aws("lambda")
    _function(aws, "routed")
    answer = lam.invoke(FunctionName="routed", Payload=json.dumps({"source": "schedule"}).encode())
    assert json.loads(answer["Payload"].read()) == {
        "echo": {"source": "schedule"},
        "qualifier": None,
        "kind": "RequestResponse",
    }
    assert answer["ExecutedVersion"] == "$LATEST" and "FunctionError" not in answer
    failed = lam.invoke(FunctionName="routed", Payload=b'{"fail": true}')
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "Boom"
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        lam.invoke(FunctionName="no-such-function", Payload=b"{}")


def test_invoke_passes_the_qualifier_on(aws: Callable[[str], Any]) -> None:
    lam = aws("lambda")
    arn = _function(aws, "routed-qualified")
    version = lam.publish_version(FunctionName="routed-qualified")["Version"]
    lam.create_alias(FunctionName="routed-qualified", Name="live", FunctionVersion=version)
    answers = [
        lam.invoke(FunctionName="routed-qualified", Qualifier="live", Payload=b"{}"),
        lam.invoke(FunctionName=arn, Qualifier="live", Payload=b"{}"),
        lam.invoke(FunctionName="routed-qualified:live", Payload=b"{}"),
    ]
    assert [json.loads(a["Payload"].read()).get("qualifier") for a in answers] == ["live"] * 3


def test_uninstall_restores_moto() -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.responses import SQSResponse

    assert emulation.is_installed()  # the module's server installed it
    invoke = vars(LambdaBackend)["invoke"]
    emulation.uninstall()
    try:
        assert "start_message_move_task" not in vars(SQSResponse)
        assert vars(LambdaBackend)["invoke"] is not invoke
        emulation.check_emulation_points()
    finally:
        emulation.install(invoker=_answer)
