"""Provision the service's AWS side in moto: secrets, queues, topic, functions with versions/aliases."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

import boto3

from service import catalog

API_KEY = "current-key-0123456789abcdefghijklmnopqrstuvwxyz"
PREVIOUS_KEY = "previous-key-0123456789abcdefghijklmnopqrstuvwxyz"
ORIGIN_VALUE = "origin-header-value-0123456789"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("service/__init__.py", "")
    return buffer.getvalue()


@dataclass
class ServiceAccount:
    api_keys_arn: str
    origin_arn: str
    topic_arn: str
    events_url: str
    preview_url: str
    events_dlq_url: str
    preview_dlq_url: str
    alerts_queue_url: str
    function_names: dict[str, str] = field(default_factory=dict)

    def base_env(self, redis_url: str) -> dict[str, str]:
        return {
            "REDIS_URL": redis_url,
            "API_KEYS_SECRET_ARN": self.api_keys_arn,
            "ALERTS_TOPIC_ARN": self.topic_arn,
            "EVENTS_QUEUE_URL": self.events_url,
            "PREVIEW_EVENTS_QUEUE_URL": self.preview_url,
            "CACHE_SCHEMA_VERSION": "1",
            "SERVICE_VERSION": "1.0.0",
            "POWERTOOLS_METRICS_NAMESPACE": "RealtimeAnalytics",
            "POWERTOOLS_SERVICE_NAME": "realtime-analytics",
            "LOG_LEVEL": "WARNING",
        }


def provision(*, visibility_timeout: int = 30, max_receive_count: int = 3) -> ServiceAccount:
    sm = boto3.client("secretsmanager")
    keys_arn = sm.create_secret(Name="realtime/api-keys", SecretString=json.dumps({"api_key": PREVIOUS_KEY}))[
        "ARN"
    ]
    # A second version makes the first AWSPREVIOUS, as a finished rotation leaves it.
    sm.put_secret_value(SecretId=keys_arn, SecretString=json.dumps({"api_key": API_KEY}))
    origin_arn = sm.create_secret(
        Name="realtime/origin", SecretString=json.dumps({"header_value": ORIGIN_VALUE})
    )["ARN"]
    sqs = boto3.client("sqs")
    urls: dict[str, str] = {}
    for name in ("events", "preview-events"):
        dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        urls[name] = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
                ),
            },
        )["QueueUrl"]
        urls[f"{name}-dlq"] = dlq
    sns = boto3.client("sns")
    topic = sns.create_topic(Name="realtime-alerts")["TopicArn"]
    alerts_queue = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    alerts_arn = sqs.get_queue_attributes(QueueUrl=alerts_queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=alerts_arn, Attributes={"RawMessageDelivery": "true"}
    )
    return ServiceAccount(
        api_keys_arn=keys_arn,
        origin_arn=origin_arn,
        topic_arn=topic,
        events_url=urls["events"],
        preview_url=urls["preview-events"],
        events_dlq_url=urls["events-dlq"],
        preview_dlq_url=urls["preview-events-dlq"],
        alerts_queue_url=alerts_queue,
    )


def create_functions(
    account: ServiceAccount, versions: list[dict[str, str]], prefix: str = "rt-"
) -> dict[str, str]:
    """Create every released function and publish one version per env in `versions` (1, 2, ...).

    Aliases: `live` -> version 1, `green` -> the last version.
    """
    iam = boto3.client("iam")
    role = iam.create_role(
        RoleName=f"{prefix}service",
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
    lam = boto3.client("lambda")
    code = _zip()
    for fn in catalog.RELEASED_FUNCTIONS:
        name = f"{prefix}{fn.key}"
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler=fn.handler,
            Code={"ZipFile": code},
            MemorySize=fn.memory_mb,
            Timeout=fn.timeout_seconds,
            Environment={"Variables": versions[0]},
        )
        published = []
        for env in versions:
            lam.update_function_configuration(FunctionName=name, Environment={"Variables": env})
            published.append(lam.publish_version(FunctionName=name)["Version"])
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion=published[0])
        lam.create_alias(FunctionName=name, Name="green", FunctionVersion=published[-1])
        account.function_names[fn.key] = name
    return account.function_names


def set_weights(function_name: str, alias: str, primary: str, extra: dict[str, float] | None = None) -> None:
    boto3.client("lambda").update_alias(
        FunctionName=function_name,
        Name=alias,
        FunctionVersion=primary,
        RoutingConfig={"AdditionalVersionWeights": extra or {}},
    )


def drain(queue_url: str, wait: int = 0) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get(
            "Messages", []
        )
        if not got:
            return found
        found.extend(got)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
        )
