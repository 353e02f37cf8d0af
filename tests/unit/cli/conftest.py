"""A moto server on loopback with Step Functions execution enabled, and a small hand-made
release-like state machine (Pass, Choice, Wait, a caught failure, a task-token gate) that the
CLI's commands are exercised against."""

from __future__ import annotations

import io
import json
import logging
import os
import urllib.request
import zipfile
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from contracts import names
from orchestrator.aws import Names

logging.getLogger("werkzeug").setLevel(logging.WARNING)

ENV = "staging"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    url = f"http://127.0.0.1:{port}"
    # moto's ASL interpreter sends SDK integrations (sqs:sendMessage...) to MOTO_PORT.
    previous = os.environ.get("MOTO_PORT")
    os.environ["MOTO_PORT"] = str(port)
    body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
    request = urllib.request.Request(f"{url}/moto-api/config", data=body, method="POST")
    urllib.request.urlopen(request).close()
    yield url
    server.stop()
    if previous is None:
        os.environ.pop("MOTO_PORT", None)
    else:
        os.environ["MOTO_PORT"] = previous


def client(service: str, url: str):  # noqa: ANN201 - boto3 clients are untyped
    return boto3.client(service, endpoint_url=url, region_name="eu-west-1")


def release_definition(queue_url: str) -> dict:
    return {
        "StartAt": "ValidateRequest",
        "States": {
            "ValidateRequest": {"Type": "Pass", "Next": "NeedsApproval"},
            "NeedsApproval": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.approval", "StringEquals": "required", "Next": "AwaitApproval"}],
                "Default": "Bake",
            },
            "AwaitApproval": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue_url, "MessageBody": {"TaskToken.$": "$$.Task.Token"}},
                "ResultPath": "$.approval_result",
                "TimeoutSeconds": 300,
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Rollback"}],
                "Next": "Bake",
            },
            "Bake": {"Type": "Wait", "Seconds": 0, "Next": "CheckAlarms"},
            "CheckAlarms": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.configuration.FAULT_ERROR_RATE", "IsPresent": True, "Next": "Rollback"}
                ],
                "Default": "Finalize",
            },
            "Finalize": {"Type": "Pass", "Next": "Released"},
            "Released": {"Type": "Succeed"},
            "Rollback": {"Type": "Pass", "Next": "ReleaseRolledBack"},
            "ReleaseRolledBack": {
                "Type": "Fail",
                "Error": "ReleaseRolledBack",
                "Cause": "green was unhealthy",
            },
        },
    }


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def stage(moto_url: str) -> dict[str, str]:
    """The release state machine, service functions with live/green aliases and two alarms."""
    target = Names(ENV)
    iam = client("iam", moto_url)
    role = iam.create_role(RoleName="cli-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sqs = client("sqs", moto_url)
    queue = sqs.create_queue(QueueName="cli-approvals")["QueueUrl"]
    sfn = client("stepfunctions", moto_url)
    machine = sfn.create_state_machine(
        name=target.release_state_machine, definition=json.dumps(release_definition(queue)), roleArn=role
    )["stateMachineArn"]
    lam = client("lambda", moto_url)
    for fn in target.functions():
        lam.create_function(
            FunctionName=fn,
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": _zip()},
        )
        v1 = lam.publish_version(FunctionName=fn)["Version"]
        lam.update_function_code(FunctionName=fn, ZipFile=_zip() + b"")
        lam.update_function_configuration(FunctionName=fn, Description="v2")
        v2 = lam.publish_version(FunctionName=fn)["Version"]
        lam.create_alias(
            FunctionName=fn,
            Name=names.LIVE_ALIAS,
            FunctionVersion=v1,
            RoutingConfig={"AdditionalVersionWeights": {v2: 0.1}},
        )
        lam.create_alias(FunctionName=fn, Name=names.GREEN_ALIAS, FunctionVersion=v2)
    cw = client("cloudwatch", moto_url)
    for suffix in ("guard-errors", "health"):
        cw.put_metric_alarm(
            AlarmName=f"{target.alarm_prefix}{suffix}",
            MetricName="Errors",
            Namespace="AWS/Lambda",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
    ddb = client("dynamodb", moto_url)
    ddb.create_table(
        TableName=target.release_table,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_environment",
                "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
            }
        ],
    )
    return {"machine": machine, "queue": queue, "role": role}
