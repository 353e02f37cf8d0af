"""IAM enforced in a moto server: role-signed requests judged, the operator's pass, integrations too."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from orchestrator.engine import moto_hooks
from orchestrator.iam.enforcer import IamEnforcer, load_observations
from orchestrator.iam.evaluator import Evaluator
from orchestrator.iam.identity import credentials_for
from orchestrator.iam.policies import PolicySet
from orchestrator.iam.report import build_report, to_markdown

from .conftest import ACCOUNT, REGION, role_arn

OPERATOR = {"aws_access_key_id": "AKIAOPERATOR00000000", "aws_secret_access_key": "operator"}


def _client(service: str, url: str, role: str | None = None) -> Any:
    if role is None:
        credentials: dict[str, str] = OPERATOR
    else:
        c = credentials_for(role_arn(role))
        credentials = {
            "aws_access_key_id": c.access_key_id,
            "aws_secret_access_key": c.secret_access_key,
            "aws_session_token": c.session_token,
        }
    return boto3.client(service, endpoint_url=url, region_name=REGION, **credentials)


@pytest.fixture
def enforcer(policy_set: PolicySet, evaluator: Evaluator) -> Iterator[IamEnforcer]:
    with IamEnforcer(policy_set, evaluator) as installed:
        yield installed
    assert moto_hooks.iam_enforcer() is None


@pytest.fixture
def table(moto_server: str) -> str:
    _client("dynamodb", moto_server).create_table(
        TableName="releases",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return "releases"


def test_allowed_call_passes_and_is_recorded(moto_server: str, table: str, enforcer: IamEnforcer) -> None:
    _client("dynamodb", moto_server, "worker-role").put_item(TableName=table, Item={"pk": {"S": "lock"}})
    observed = {(o.action, o.resource, o.verdict, o.caller) for o, _ in enforcer.observations}
    assert (
        "dynamodb:PutItem",
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/releases",
        "Allowed",
        "echo",
    ) in observed


def test_call_outside_the_roles_scope_is_denied_as_aws_does(
    moto_server: str, table: str, enforcer: IamEnforcer
) -> None:
    other = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/other"
    with pytest.raises(ClientError) as denied:
        _client("dynamodb", moto_server, "worker-role").get_item(TableName="other", Key={"pk": {"S": "x"}})
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert error["Message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/worker-role/echo is not authorized to perform: "
        f"dynamodb:GetItem on resource: {other} because no identity-based policy allows the dynamodb:GetItem action"
    )
    with pytest.raises(ClientError) as explicit:
        _client("dynamodb", moto_server, "worker-role").delete_item(TableName=table, Key={"pk": {"S": "x"}})
    assert explicit.value.response["Error"]["Message"].endswith(
        "with an explicit deny in an identity-based policy"
    )
    with pytest.raises(ClientError) as sqs_denied:
        _client("sqs", moto_server, "worker-role").get_queue_url(QueueName="plain")
    assert sqs_denied.value.response["Error"]["Code"] == "AccessDenied"
    assert sqs_denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as sns_denied:
        _client("sns", moto_server, "worker-role").publish(
            TopicArn=f"arn:aws:sns:{REGION}:{ACCOUNT}:t", Message="m"
        )
    assert sns_denied.value.response["Error"]["Code"] == "AuthorizationError"
    assert "not authorized to perform: SNS:Publish" in sns_denied.value.response["Error"]["Message"]


def test_operator_key_passes_unjudged(moto_server: str, table: str, enforcer: IamEnforcer) -> None:
    _client("dynamodb", moto_server).get_item(TableName=table, Key={"pk": {"S": "x"}})
    _client("sqs", moto_server).create_queue(QueueName="anything")
    assert enforcer.observations == []


def test_unmapped_operation_fails_closed(moto_server: str, enforcer: IamEnforcer) -> None:
    with pytest.raises(ClientError) as denied:
        _client("ec2", moto_server, "worker-role").describe_vpcs()
    assert "unmapped" in denied.value.response["Error"]["Message"]
    assert [o.unmapped for o, _ in enforcer.observations] == [True]


def test_kms_key_checked_on_the_callers_behalf(moto_server: str, enforcer: IamEnforcer) -> None:
    url = _client("sqs", moto_server).create_queue(QueueName="events")["QueueUrl"]
    _client("sqs", moto_server, "worker-role").send_message(QueueUrl=url, MessageBody="hello")
    actions = {(o.action, o.verdict) for o, _ in enforcer.observations}
    assert (
        "kms:GenerateDataKey",
        "Allowed",
    ) in actions  # the role's grant plus the key policy's root statement
    assert ("sqs:SendMessage", "Allowed") in actions


def test_not_installed_means_not_judged(
    moto_server: str, table: str, policy_set: PolicySet, evaluator: Evaluator
) -> None:
    enforcer = IamEnforcer(policy_set, evaluator)
    _client("dynamodb", moto_server, "worker-role").get_item(TableName=table, Key={"pk": {"S": "x"}})
    with enforcer:
        with pytest.raises(ClientError):
            _client("dynamodb", moto_server, "worker-role").scan(TableName=table)
    _client("dynamodb", moto_server, "worker-role").scan(TableName=table)  # uninstalled again


def _alarms(url: str) -> None:
    cw = _client("cloudwatch", url)
    for name in ("staging-release-guard", "staging-release-latency"):
        cw.put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="Release",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
    # moto has no PutCompositeAlarm; its backend stores a composite as an alarm with a rule.
    from moto.cloudwatch.models import cloudwatch_backends

    cloudwatch_backends[ACCOUNT][REGION].put_metric_alarm(
        name="staging-release-health",
        namespace="",
        metric_name="",
        comparison_operator="",
        evaluation_periods=1,
        period=60,
        threshold=0.0,
        statistic="",
        description="",
        dimensions=[],
        alarm_actions=[],
        rule='ALARM("staging-release-guard") OR ALARM("staging-release-latency")',
    )


NAMES = ["staging-release-guard", "staging-release-latency", "staging-release-health"]


def test_describe_alarms_scoped_grant_omits_composites(moto_server: str, enforcer: IamEnforcer) -> None:
    _alarms(moto_server)
    answer = _client("cloudwatch", moto_server, "worker-role").describe_alarms(AlarmNames=NAMES)
    assert sorted(a["AlarmName"] for a in answer["MetricAlarms"]) == NAMES[:2]
    assert answer["CompositeAlarms"] == []  # silently omitted, no error
    assert all(o.verdict == "Allowed" for o, _ in enforcer.observations)


def test_describe_alarms_star_grant_includes_composites(moto_server: str, enforcer: IamEnforcer) -> None:
    _alarms(moto_server)
    answer = _client("cloudwatch", moto_server, "watcher-role").describe_alarms(AlarmNames=NAMES)
    assert [a["AlarmName"] for a in answer["CompositeAlarms"]] == ["staging-release-health"]
    assert len(answer["MetricAlarms"]) == 2
    # The operator (not judged) sees everything too.
    assert len(_client("cloudwatch", moto_server).describe_alarms(AlarmNames=NAMES)["CompositeAlarms"]) == 1


def _enable_execution(url: str) -> None:
    request = urllib.request.Request(
        f"{url}/moto-api/config",
        method="POST",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def test_state_machine_integration_denied_takes_its_catch(
    moto_server: str, table: str, enforcer: IamEnforcer
) -> None:
    _enable_execution(moto_server)
    definition = {
        "StartAt": "ReadLock",
        "States": {
            "ReadLock": {  # granted to the machine's role
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:getItem",
                "Parameters": {"TableName": table, "Key": {"pk": {"S": "lock"}}},
                "ResultPath": "$.read",
                "Next": "AcquireLock",
            },
            "AcquireLock": {  # not granted: PutItem
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:putItem",
                "Parameters": {"TableName": table, "Item": {"pk": {"S": "lock"}}},
                "Catch": [
                    {
                        "ErrorEquals": ["DynamoDB.AccessDeniedException"],
                        "ResultPath": "$.error",
                        "Next": "Denied",
                    }
                ],
                "Next": "Done",
            },
            "Denied": {"Type": "Pass", "End": True},
            "Done": {"Type": "Succeed"},
        },
    }
    sfn = _client("stepfunctions", moto_server)
    machine = sfn.create_state_machine(
        name="lock-machine", definition=json.dumps(definition), roleArn=role_arn("machine-role")
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="run-1", input="{}")["executionArn"]
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution did not finish"
        time.sleep(0.05)
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["error"]["Error"] == "DynamoDB.AccessDeniedException"
    assert "dynamodb:PutItem" in output["error"]["Cause"]
    observed = {(o.action, o.verdict, o.caller) for o, _ in enforcer.observations}
    assert ("dynamodb:GetItem", "Allowed", "lock-machine") in observed
    assert ("dynamodb:PutItem", "ImplicitlyDenied", "lock-machine") in observed


def test_dump_and_report(
    moto_server: str, table: str, enforcer: IamEnforcer, policy_set: PolicySet, tmp_path: Path
) -> None:
    _client("dynamodb", moto_server, "worker-role").put_item(TableName=table, Item={"pk": {"S": "a"}})
    _client("dynamodb", moto_server, "worker-role").put_item(TableName=table, Item={"pk": {"S": "b"}})
    with pytest.raises(ClientError):
        _client("dynamodb", moto_server, "worker-role").scan(TableName=table)
    path = enforcer.dump(tmp_path / "obs.jsonl")
    records = load_observations([path])
    put = next(r for r in records if r["action"] == "dynamodb:PutItem")
    assert put["count"] == 2 and put["caller"] == "echo" and put["principal"] == role_arn("worker-role")
    report = build_report(records, policy_set)
    assert report["summary"]["allowed"] == 2 and report["summary"]["denied"] == 1
    worker = next(r for r in report["roles"] if r["role"] == role_arn("worker-role"))
    unexercised = {(g["action"], g["resource"]) for g in worker["unexercised"]}
    assert ("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/releases") not in unexercised
    assert ("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:events") in unexercised
    assert "| dynamodb:Scan |" in to_markdown(report)
