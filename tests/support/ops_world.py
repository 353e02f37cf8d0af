"""A moto world for the operations tasks: the cache's replication group, the backup buckets,
the operations topic (with a queue subscribed, so tests read the notices), the lock table.

moto answers CreateSnapshot/DescribeSnapshots/DeleteSnapshot and the replication group calls;
it has no CopySnapshot. `ExportFake` answers CopySnapshot the way ElastiCache's export does
(an `.rdb` object per node group appears in the target bucket) through botocore's own
`before-call` event, so the task's request goes through botocore's validation unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3

REGION = "eu-west-1"
COPY_REGION = "eu-central-1"
ENV = "staging"
GROUP = "staging-realtime-cache"
BUCKET = "staging-realtime-backups-111111111111"
COPY_BUCKET = "staging-realtime-backups-copy-111111111111"
TABLE = "staging-release"


@dataclass
class ExportFake:
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        # `params` is the serialized request: the query protocol's body holds the API parameters.
        body = {k: v for k, v in params["body"].items() if k not in ("Action", "Version")}
        self.requests.append(body)
        params = body
        bucket, name = params["TargetBucket"], params["TargetSnapshotName"]
        boto3.client("s3", region_name=REGION).put_object(
            Bucket=bucket, Key=f"{name}-0001.rdb", Body=b"REDIS0011"
        )
        response = {
            "Snapshot": {"SnapshotName": name, "SnapshotStatus": "exporting"},
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }
        return _HttpResponse(), response

    def install(self) -> None:
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-call.elasticache.CopySnapshot", self)


class _HttpResponse:
    status_code = 200
    headers: dict[str, str] = {}  # noqa: RUF012 - botocore reads it only
    content = b""


@dataclass
class OpsWorld:
    topic_arn: str
    notices_queue_url: str
    export: ExportFake

    def env(self) -> dict[str, str]:
        return {
            "ENVIRONMENT": ENV,
            "REPLICATION_GROUP_ID": GROUP,
            "BACKUP_BUCKET": BUCKET,
            "BACKUP_RETENTION_DAYS": "7",
            "OPERATIONS_TOPIC_ARN": self.topic_arn,
            "RELEASE_TABLE_NAME": TABLE,
            "POWERTOOLS_METRICS_NAMESPACE": "RealtimeAnalytics",
        }

    def notices(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        found: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.notices_queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append({"subject": envelope.get("Subject"), **json.loads(envelope["Message"])})
                sqs.delete_message(QueueUrl=self.notices_queue_url, ReceiptHandle=message["ReceiptHandle"])

    def metric(self, name: str) -> list[float]:
        cw = boto3.client("cloudwatch", region_name=REGION)
        data = cw.list_metrics(Namespace="RealtimeAnalytics", MetricName=name)["Metrics"]
        if not data:
            return []
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC)
        stats = cw.get_metric_statistics(
            Namespace="RealtimeAnalytics",
            MetricName=name,
            Dimensions=data[0]["Dimensions"],
            StartTime=now - timedelta(days=30),
            EndTime=now + timedelta(days=30),
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        return [point["Sum"] for point in stats]

    def snapshots(self) -> list[str]:
        ec = boto3.client("elasticache", region_name=REGION)
        return sorted(s["SnapshotName"] for s in ec.describe_snapshots()["Snapshots"])

    def groups(self) -> dict[str, str]:
        ec = boto3.client("elasticache", region_name=REGION)
        return {
            g["ReplicationGroupId"]: g["Status"]
            for g in ec.describe_replication_groups()["ReplicationGroups"]
        }


def build_ops_world() -> OpsWorld:
    ec = boto3.client("elasticache", region_name=REGION)
    ec.create_replication_group(
        ReplicationGroupId=GROUP,
        ReplicationGroupDescription="cache",
        Engine="valkey",
        EngineVersion="8.0",
        CacheNodeType="cache.t4g.small",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
        CacheSubnetGroupName="staging-cache-subnets",
        SecurityGroupIds=["sg-0123456789abcdef0"],
        Port=6390,
        TransitEncryptionEnabled=True,
        AtRestEncryptionEnabled=True,
    )
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    boto3.client("s3", region_name=COPY_REGION).create_bucket(
        Bucket=COPY_BUCKET, CreateBucketConfiguration={"LocationConstraint": COPY_REGION}
    )
    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name="staging-realtime-operations")["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="operations-notices")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    export = ExportFake()
    export.install()
    return OpsWorld(topic_arn=topic_arn, notices_queue_url=queue_url, export=export)


def lambda_context(seconds: float = 900, name: str = "ops-task") -> Any:
    """What Powertools and the tasks read from a Lambda context."""
    from types import SimpleNamespace

    return SimpleNamespace(
        get_remaining_time_in_millis=lambda: int(seconds * 1000),
        function_name=name,
        aws_request_id="req-1",
        invoked_function_arn=f"arn:aws:lambda:{REGION}:111111111111:function:{name}",
        memory_limit_in_mb=256,
    )
