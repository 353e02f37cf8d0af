"""A release-ready AWS world in moto: service functions on blue behind `live`/`green`, the
release table, the release topic, the guard alarms and an artifact in S3.

Shared by the task unit tests and the release integration tests.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3

from contracts import names
from service.catalog import released_keys

REGION = "eu-west-1"
ENV = "staging"
KEYS = released_keys()
FUNCTIONS = tuple(names.function_name(ENV, key) for key in KEYS)
TABLE = names.release_table_name(ENV)
BUCKET = "staging-release-artifacts"
# The gate infra builds: one guard per released function, the fan-out DLQ guard, the composite.
GUARD_ALARMS = names.release_guard_alarm_names(ENV, KEYS)
HEALTH_ALARM = names.release_health_alarm_name(ENV)
ALARM_NAMES = names.release_alarm_names(ENV, KEYS)


def make_zip(marker: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("service/__init__.py", f"VERSION = {marker!r}\n")
    return buffer.getvalue()


@dataclass
class World:
    topic_arn: str
    queue_url: str
    role_arn: str
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            "ENVIRONMENT": ENV,
            "SERVICE_FUNCTION_NAMES": json.dumps(list(FUNCTIONS)),
            "RELEASE_TABLE_NAME": TABLE,
            "RELEASE_TOPIC_ARN": self.topic_arn,
            "RELEASE_ALARM_NAMES": json.dumps(list(ALARM_NAMES)),
        }

    def artifact(self, marker: str) -> dict[str, str]:
        """Upload a distinct code bundle and return the request's `artifact` for it."""
        if marker not in self.artifacts:
            body = make_zip(marker)
            key = f"service/{marker}.zip"
            boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=key, Body=body)
            self.artifacts[marker] = {
                "bucket": BUCKET,
                "key": key,
                "sha256": hashlib.sha256(body).hexdigest(),
            }
        return self.artifacts[marker]

    # -- observations ------------------------------------------------------------------------
    def aliases(self, alias: str = "live") -> dict[str, tuple[str, dict[str, float]]]:
        lam = boto3.client("lambda", region_name=REGION)
        result = {}
        for fn in FUNCTIONS:
            item = lam.get_alias(FunctionName=fn, Name=alias)
            weights = (item.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            result[fn] = (item["FunctionVersion"], {k: float(v) for k, v in weights.items()})
        return result

    def lock(self) -> dict[str, Any] | None:
        table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
        return table.get_item(Key={"pk": f"lock#{ENV}", "sk": "lock"}).get("Item")

    def record(self, release_id: str) -> dict[str, Any] | None:
        table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
        return table.get_item(Key={"pk": f"release#{release_id}", "sk": "record"}).get("Item")

    def notifications(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        messages: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(json.loads(message["Body"])["Message"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def set_alarm(self, name: str, state: str) -> None:
        boto3.client("cloudwatch", region_name=REGION).set_alarm_state(
            AlarmName=name, StateValue=state, StateReason=f"test set {state}"
        )


def build_world() -> World:
    """Create everything inside an active moto mock."""
    iam = boto3.client("iam", region_name=REGION)
    role_arn = iam.create_role(
        RoleName="service-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    lam = boto3.client("lambda", region_name=REGION)
    for fn in FUNCTIONS:
        lam.create_function(
            FunctionName=fn,
            Runtime="python3.12",
            Role=role_arn,
            Handler="service.handlers.x.handler",
            Code={"ZipFile": make_zip("blue")},
            Environment={"Variables": {"CACHE_SCHEMA_VERSION": "1", "SERVICE_VERSION": "1.0.0"}},
        )
        version = lam.publish_version(FunctionName=fn)["Version"]
        lam.create_alias(FunctionName=fn, Name="live", FunctionVersion=version)
        lam.create_alias(FunctionName=fn, Name="green", FunctionVersion=version)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_environment",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name=f"{ENV}-release-notifications")["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="release-notifications-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for name in GUARD_ALARMS:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    # moto has no PutCompositeAlarm API; its backend stores composites as alarms with a rule.
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    cloudwatch_backends[DEFAULT_ACCOUNT_ID][REGION].put_metric_alarm(
        name=HEALTH_ALARM,
        namespace="",
        metric_name="",
        comparison_operator="",
        evaluation_periods=1,
        period=60,
        threshold=0,
        statistic="",
        description="release health",
        dimensions=[],
        alarm_actions=[],
        rule=" OR ".join(f'ALARM("{name}")' for name in GUARD_ALARMS),
    )
    for name in (*GUARD_ALARMS, HEALTH_ALARM):
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="healthy")
    world = World(topic_arn=topic_arn, queue_url=queue_url, role_arn=role_arn)
    os.environ.update(world.env())
    return world


def record_green_traffic(invocations: int) -> None:
    """Traffic through `live`: each invocation resolves the alias weights like Lambda does,
    and is recorded as the sandbox gateway records it (AWS/Lambda Invocations by version)."""
    import random

    lam = boto3.client("lambda", region_name=REGION)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for fn in FUNCTIONS:
        alias = lam.get_alias(FunctionName=fn, Name="live")
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        counts: dict[str, int] = {}
        for _ in range(invocations):
            version = alias["FunctionVersion"]
            for other, weight in weights.items():
                if random.random() < float(weight):
                    version = other
            counts[version] = counts.get(version, 0) + 1
        cloudwatch.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {
                    "MetricName": "Invocations",
                    "Dimensions": [
                        {"Name": "FunctionName", "Value": fn},
                        {"Name": "Resource", "Value": f"{fn}:live"},
                        {"Name": "ExecutedVersion", "Value": version},
                    ],
                    "Value": count,
                    "Unit": "Count",
                }
                for version, count in counts.items()
            ],
        )


def record_version_traffic(
    function: str,
    version: str,
    durations_ms: list[float],
    *,
    errors: int = 0,
    when: datetime | None = None,
    alias: str = "live",
) -> None:
    """`len(durations_ms)` invocations of `version` through `alias` (`green`: the canary stage's),
    `errors` of them failed, sent exactly as the sandbox gateway sends them (orchestrator.gateway.metrics)."""
    from orchestrator.gateway.metrics import NAMESPACE, Sample, build_metric_data

    samples = [
        Sample(function_name=function, alias=alias, version=version, duration_ms=ms, error=index < errors)
        for index, ms in enumerate(durations_ms)
    ]
    data = build_metric_data(samples, when or datetime.now(UTC))
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for start in range(0, len(data), 500):
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start : start + 500])
