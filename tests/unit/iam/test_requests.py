"""Each mapped operation -> the IAM action(s), resource ARN(s) and context AWS judges."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.iam.policies import PolicySet
from orchestrator.iam.requests import Call, Unmapped, checks_for

from .conftest import ACCOUNT, REGION

A, R = ACCOUNT, REGION
FN = f"arn:aws:lambda:{R}:{A}:function"
QURL = f"https://sqs.{R}.amazonaws.com/{A}/plain"

CASES: list[tuple[str, str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "lambda",
        "Invoke",
        {"FunctionName": "echo", "Qualifier": "live"},
        [("lambda:InvokeFunction", f"{FN}:echo:live")],
    ),
    (
        "lambda",
        "Invoke",
        {"FunctionName": f"{FN}:echo:green"},
        [("lambda:InvokeFunction", f"{FN}:echo:green")],
    ),
    ("lambda", "Invoke", {"FunctionName": "echo"}, [("lambda:InvokeFunction", f"{FN}:echo")]),
    (
        "lambda",
        "UpdateAlias",
        {"FunctionName": "echo", "Name": "live"},
        [("lambda:UpdateAlias", f"{FN}:echo")],
    ),
    (
        "lambda",
        "CreateAlias",
        {"FunctionName": f"{FN}:echo", "Name": "x"},
        [("lambda:CreateAlias", f"{FN}:echo")],
    ),
    ("lambda", "GetAlias", {"FunctionName": "echo", "Name": "live"}, [("lambda:GetAlias", f"{FN}:echo")]),
    ("lambda", "PublishVersion", {"FunctionName": "echo"}, [("lambda:PublishVersion", f"{FN}:echo")]),
    ("lambda", "UpdateFunctionCode", {"FunctionName": "echo"}, [("lambda:UpdateFunctionCode", f"{FN}:echo")]),
    (
        "lambda",
        "GetFunctionConfiguration",
        {"FunctionName": "echo", "Qualifier": "3"},
        [("lambda:GetFunctionConfiguration", f"{FN}:echo:3")],
    ),
    (
        "lambda",
        "ListVersionsByFunction",
        {"FunctionName": "echo"},
        [("lambda:ListVersionsByFunction", f"{FN}:echo")],
    ),
    ("lambda", "ListFunctions", {}, [("lambda:ListFunctions", "*")]),
    (
        "sqs",
        "StartMessageMoveTask",
        {"SourceArn": f"arn:aws:sqs:{R}:{A}:dlq"},
        [
            (f"sqs:{a}", f"arn:aws:sqs:{R}:{A}:dlq")
            for a in ("StartMessageMoveTask", "ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
        ],
    ),
    (
        "sqs",
        "ListMessageMoveTasks",
        {"SourceArn": f"arn:aws:sqs:{R}:{A}:dlq"},
        [("sqs:ListMessageMoveTasks", f"arn:aws:sqs:{R}:{A}:dlq")],
    ),
    (
        "lambda",
        "GetEventSourceMapping",
        {"UUID": "a1b2"},
        [("lambda:GetEventSourceMapping", f"arn:aws:lambda:{R}:{A}:event-source-mapping:a1b2")],
    ),
    (
        "lambda",
        "UpdateEventSourceMapping",
        {"UUID": "a1b2", "Enabled": False},
        [("lambda:UpdateEventSourceMapping", f"arn:aws:lambda:{R}:{A}:event-source-mapping:a1b2")],
    ),
    (
        "dynamodb",
        "PutItem",
        {"TableName": "releases"},
        [("dynamodb:PutItem", f"arn:aws:dynamodb:{R}:{A}:table/releases")],
    ),
    (
        "dynamodb",
        "Query",
        {"TableName": "releases", "IndexName": "by-env"},
        [("dynamodb:Query", f"arn:aws:dynamodb:{R}:{A}:table/releases/index/by-env")],
    ),
    (
        "dynamodb",
        "BatchWriteItem",
        {"RequestItems": {"a": [], "b": []}},
        [
            ("dynamodb:BatchWriteItem", f"arn:aws:dynamodb:{R}:{A}:table/a"),
            ("dynamodb:BatchWriteItem", f"arn:aws:dynamodb:{R}:{A}:table/b"),
        ],
    ),
    (
        "dynamodb",
        "TransactWriteItems",
        {"TransactItems": [{"Put": {"TableName": "a"}}, {"ConditionCheck": {"TableName": "a"}}]},
        [
            ("dynamodb:PutItem", f"arn:aws:dynamodb:{R}:{A}:table/a"),
            ("dynamodb:ConditionCheckItem", f"arn:aws:dynamodb:{R}:{A}:table/a"),
        ],
    ),
    ("sqs", "GetQueueUrl", {"QueueName": "plain"}, [("sqs:GetQueueUrl", f"arn:aws:sqs:{R}:{A}:plain")]),
    ("sqs", "SendMessage", {"QueueUrl": QURL}, [("sqs:SendMessage", f"arn:aws:sqs:{R}:{A}:plain")]),
    ("sqs", "SendMessageBatch", {"QueueUrl": QURL}, [("sqs:SendMessage", f"arn:aws:sqs:{R}:{A}:plain")]),
    (
        "sqs",
        "ChangeMessageVisibilityBatch",
        {"QueueUrl": QURL},
        [("sqs:ChangeMessageVisibility", f"arn:aws:sqs:{R}:{A}:plain")],
    ),
    (
        "sqs",
        "DeleteMessage",
        {"QueueUrl": f"http://127.0.0.1:5000/{A}/plain"},
        [("sqs:DeleteMessage", f"arn:aws:sqs:{R}:{A}:plain")],
    ),
    ("sns", "Publish", {"TopicArn": f"arn:aws:sns:{R}:{A}:t"}, [("sns:Publish", f"arn:aws:sns:{R}:{A}:t")]),
    (
        "sns",
        "PublishBatch",
        {"TopicArn": f"arn:aws:sns:{R}:{A}:t"},
        [("sns:Publish", f"arn:aws:sns:{R}:{A}:t")],
    ),
    ("s3", "GetObject", {"Bucket": "b", "Key": "k/x.json"}, [("s3:GetObject", "arn:aws:s3:::b/k/x.json")]),
    ("s3", "PutObject", {"Bucket": "b", "Key": "k"}, [("s3:PutObject", "arn:aws:s3:::b/k")]),
    ("s3", "ListObjectsV2", {"Bucket": "b"}, [("s3:ListBucket", "arn:aws:s3:::b")]),
    (
        "secretsmanager",
        "GetSecretValue",
        {"SecretId": "api-keys"},
        [("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{R}:{A}:secret:api-keys")],
    ),
    (
        "secretsmanager",
        "UpdateSecretVersionStage",
        {"SecretId": "s"},
        [("secretsmanager:UpdateSecretVersionStage", f"arn:aws:secretsmanager:{R}:{A}:secret:s")],
    ),
    (
        "cloudwatch",
        "DescribeAlarms",
        {"AlarmNames": ["a", "b"]},
        [
            ("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{R}:{A}:alarm:a"),
            ("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{R}:{A}:alarm:b"),
        ],
    ),
    (
        "cloudwatch",
        "DescribeAlarms",
        {"AlarmNamePrefix": "staging-"},
        [("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{R}:{A}:alarm:staging-*")],
    ),
    ("cloudwatch", "GetMetricStatistics", {}, [("cloudwatch:GetMetricStatistics", "*")]),
    (
        "cloudwatch",
        "SetAlarmState",
        {"AlarmName": "x"},
        [("cloudwatch:SetAlarmState", f"arn:aws:cloudwatch:{R}:{A}:alarm:x")],
    ),
    (
        "logs",
        "PutLogEvents",
        {"logGroupName": "/g", "logStreamName": "s"},
        [("logs:PutLogEvents", f"arn:aws:logs:{R}:{A}:log-group:/g:log-stream:s")],
    ),
    (
        "elasticache",
        "DescribeReplicationGroups",
        {"ReplicationGroupId": "rg"},
        [("elasticache:DescribeReplicationGroups", f"arn:aws:elasticache:{R}:{A}:replicationgroup:rg")],
    ),
    (
        "elasticache",
        "CreateSnapshot",
        {"ReplicationGroupId": "rg", "SnapshotName": "s1"},
        [
            ("elasticache:CreateSnapshot", f"arn:aws:elasticache:{R}:{A}:snapshot:s1"),
            ("elasticache:CreateSnapshot", f"arn:aws:elasticache:{R}:{A}:replicationgroup:rg"),
        ],
    ),
    (
        "elasticache",
        "CopySnapshot",
        {"SourceSnapshotName": "a", "TargetSnapshotName": "b"},
        [
            ("elasticache:CopySnapshot", f"arn:aws:elasticache:{R}:{A}:snapshot:a"),
            ("elasticache:CopySnapshot", f"arn:aws:elasticache:{R}:{A}:snapshot:b"),
        ],
    ),
    (
        "stepfunctions",
        "StartExecution",
        {"stateMachineArn": f"arn:aws:states:{R}:{A}:stateMachine:m"},
        [("states:StartExecution", f"arn:aws:states:{R}:{A}:stateMachine:m")],
    ),
    (
        "stepfunctions",
        "StopExecution",
        {"executionArn": f"arn:aws:states:{R}:{A}:execution:m:e"},
        [("states:StopExecution", f"arn:aws:states:{R}:{A}:execution:m:e")],
    ),
    ("stepfunctions", "SendTaskSuccess", {"taskToken": "t"}, [("states:SendTaskSuccess", "*")]),
    (
        "events",
        "PutEvents",
        {"Entries": [{"Source": "x"}]},
        [("events:PutEvents", f"arn:aws:events:{R}:{A}:event-bus/default")],
    ),
    ("events", "EnableRule", {"Name": "r"}, [("events:EnableRule", f"arn:aws:events:{R}:{A}:rule/r")]),
    (
        "scheduler",
        "GetSchedule",
        {"Name": "s", "GroupName": "ops"},
        [("scheduler:GetSchedule", f"arn:aws:scheduler:{R}:{A}:schedule/ops/s")],
    ),
    (
        "scheduler",
        "CreateSchedule",
        {"Name": "s", "Target": {"RoleArn": "arn:aws:iam::1:role/r"}},
        [
            ("scheduler:CreateSchedule", f"arn:aws:scheduler:{R}:{A}:schedule/default/s"),
            ("iam:PassRole", "arn:aws:iam::1:role/r"),
        ],
    ),
    ("ce", "GetCostAndUsage", {}, [("ce:GetCostAndUsage", "*")]),
    (
        "budgets",
        "DescribeBudgets",
        {"AccountId": A},
        [("budgets:ViewBudget", f"arn:aws:budgets::{A}:budget/*")],
    ),
    ("kms", "Decrypt", {"KeyId": "k1"}, [("kms:Decrypt", f"arn:aws:kms:{R}:{A}:key/k1")]),
    ("sts", "GetCallerIdentity", {}, []),
    (
        "sts",
        "AssumeRole",
        {"RoleArn": "arn:aws:iam::1:role/r"},
        [("sts:AssumeRole", "arn:aws:iam::1:role/r")],
    ),
    ("xray", "PutTraceSegments", {}, [("xray:PutTraceSegments", "*")]),
]


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"), CASES, ids=lambda v: v if isinstance(v, str) else None
)
def test_mapping(
    service: str, operation: str, params: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    checks = checks_for(Call(service, operation, params, REGION, ACCOUNT))
    assert not isinstance(checks, Unmapped)
    assert [(c.action, c.resource) for c in checks] == expected
    assert all(c.context.get("aws:SecureTransport") == "true" for c in checks)


def test_put_metric_data_carries_the_namespace() -> None:
    checks = checks_for(Call("cloudwatch", "PutMetricData", {"Namespace": "Release"}, REGION, ACCOUNT))
    assert not isinstance(checks, Unmapped)
    assert checks[0].context["cloudwatch:namespace"] == "Release"


def test_kms_checks_on_the_callers_behalf(policy_set: PolicySet) -> None:
    queue_url = f"https://sqs.{R}.amazonaws.com/{A}/events"
    send = checks_for(Call("sqs", "SendMessage", {"QueueUrl": queue_url}, R, A), policy_set)
    receive = checks_for(Call("sqs", "ReceiveMessage", {"QueueUrl": queue_url}, R, A), policy_set)
    assert not isinstance(send, Unmapped) and not isinstance(receive, Unmapped)
    key = policy_set.encryption_key(f"arn:aws:sqs:{R}:{A}:events")
    assert [(c.action, c.resource) for c in send] == [
        ("sqs:SendMessage", f"arn:aws:sqs:{R}:{A}:events"),
        ("kms:GenerateDataKey", key),
    ]
    assert [c.action for c in receive] == ["sqs:ReceiveMessage", "kms:Decrypt"]
    assert send[1].context["kms:ViaService"] == f"sqs.{R}.amazonaws.com" and send[1].on_behalf_of == "sqs"
    plain = checks_for(Call("sqs", "SendMessage", {"QueueUrl": QURL}, R, A), policy_set)
    assert not isinstance(plain, Unmapped) and len(plain) == 1  # no customer key, no KMS check


def test_unmapped_operation_is_marked_not_allowed() -> None:
    result = checks_for(Call("ec2", "DescribeVpcs", {}, REGION, ACCOUNT))
    assert result == Unmapped("ec2", "DescribeVpcs")
    assert isinstance(checks_for(Call("lambda", "FrobnicateFunction", {"FunctionName": "f"}, R, A)), Unmapped)


KVS = f"arn:aws:cloudfront::{A}:key-value-store/9f1c2d3e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    "operation", ["DescribeKeyValueStore", "GetKey", "PutKey", "DeleteKey", "ListKeys", "UpdateKeys"]
)
def test_keyvaluestore_operations_name_the_store(operation: str) -> None:
    # Every KeyValueStore action is scoped to the store (resource type key-value-store, no region).
    checks = checks_for(Call("cloudfront-keyvaluestore", operation, {"KvsARN": KVS, "Key": "k"}, R, A))
    assert not isinstance(checks, Unmapped)
    assert [(c.action, c.resource) for c in checks] == [(f"cloudfront-keyvaluestore:{operation}", KVS)]


def test_keyvaluestore_arn_as_moto_parses_it_from_the_path_is_decoded() -> None:
    encoded = KVS.replace(":", "%3A").replace("/", "%2F")
    checks = checks_for(Call("cloudfront-keyvaluestore", "GetKey", {"KvsARN": encoded}, R, A))
    assert not isinstance(checks, Unmapped) and checks[0].resource == KVS


def test_keyvaluestore_without_a_store_or_unknown_operation_is_unmapped() -> None:
    assert checks_for(Call("cloudfront-keyvaluestore", "GetKey", {}, R, A)) == Unmapped(
        "cloudfront-keyvaluestore", "GetKey"
    )
    assert isinstance(
        checks_for(Call("cloudfront-keyvaluestore", "Frobnicate", {"KvsARN": KVS}, R, A)), Unmapped
    )


@pytest.mark.parametrize(
    ("operation", "method"),
    [("PostToConnection", "POST"), ("GetConnection", "GET"), ("DeleteConnection", "DELETE")],
)
def test_connections_on_the_canary_stage(operation: str, method: str) -> None:
    # DrainCanary closes canary connections: ManageConnections on <api>/canary/DELETE/@connections/<id>.
    params = {"ApiId": "a1b2c3", "Stage": "canary", "ConnectionId": "L0SM9cOFvHcCIhw="}
    checks = checks_for(Call("apigatewaymanagementapi", operation, params, R, A))
    assert not isinstance(checks, Unmapped)
    assert [(c.action, c.resource) for c in checks] == [
        (
            "execute-api:ManageConnections",
            f"arn:aws:execute-api:{R}:{A}:a1b2c3/canary/{method}/@connections/L0SM9cOFvHcCIhw=",
        )
    ]
    no_stage = checks_for(Call("apigatewaymanagementapi", operation, {"ConnectionId": "x"}, R, A))
    assert isinstance(no_stage, Unmapped)
