"""Shared fixtures: one policy evaluator per session, a small template's policy set, a moto server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.engine.intrinsics import ResourceMap, Sandbox
from orchestrator.iam.evaluator import Evaluator
from orchestrator.iam.policies import PolicySet, build_policy_set

ACCOUNT = "123456789012"
REGION = "eu-west-1"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def _role(name: str, service: str = "lambda.amazonaws.com") -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": name,
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
                ],
            },
            "ManagedPolicyArns": [
                {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}
            ],
        },
    }


def _policy(name: str, role: str, *statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": name,
            "Roles": [{"Ref": role}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": list(statements)},
        },
    }


def _alarm_arn(name: str) -> dict[str, Any]:
    return {
        "Fn::Sub": f"arn:${{AWS::Partition}}:cloudwatch:${{AWS::Region}}:${{AWS::AccountId}}:alarm:{name}"
    }


TEMPLATE: dict[str, Any] = {
    "Resources": {
        "WorkerRole": _role("worker-role"),
        "WorkerPolicy": _policy(
            "WorkerPolicy",
            "WorkerRole",
            {
                "Effect": "Allow",
                "Action": ["dynamodb:PutItem", "dynamodb:GetItem"],
                "Resource": {"Fn::GetAtt": ["Table", "Arn"]},
            },
            {
                "Effect": "Allow",
                "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
                "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
            },
            {"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": {"Fn::GetAtt": ["Key", "Arn"]}},
            {
                "Effect": "Allow",
                "Action": "cloudwatch:DescribeAlarms",
                "Resource": _alarm_arn("staging-release-*"),
            },
            {
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": "Release"}},
            },
            {
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": [
                    {"Fn::GetAtt": ["Echo", "Arn"]},
                    {"Fn::Join": ["", [{"Fn::GetAtt": ["Echo", "Arn"]}, ":*"]]},
                ],
            },
            {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"},
        ),
        "WatcherRole": _role("watcher-role"),
        "WatcherPolicy": _policy(
            "WatcherPolicy",
            "WatcherRole",
            {"Effect": "Allow", "Action": "cloudwatch:DescribeAlarms", "Resource": "*"},
        ),
        "MachineRole": _role("machine-role", "states.amazonaws.com"),
        "MachinePolicy": _policy(
            "MachinePolicy",
            "MachineRole",
            {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["Table", "Arn"]}},
        ),
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "releases"}},
        "Queue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": "events", "KmsMasterKeyId": {"Fn::GetAtt": ["Key", "Arn"]}},
        },
        "PlainQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "plain"}},
        "QueuePolicy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": "Queue"}],
                "PolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Deny",
                            "Principal": {"AWS": "*"},
                            "Action": "sqs:*",
                            "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ]
                },
            },
        },
        "Key": {
            "Type": "AWS::KMS::Key",
            "Properties": {
                "KeyPolicy": {
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
                    ]
                }
            },
        },
        "Echo": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": "echo",
                "Role": {"Fn::GetAtt": ["WorkerRole", "Arn"]},
                "Handler": "x.h",
            },
        },
        "EchoPermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": {"Fn::GetAtt": ["Echo", "Arn"]},
                "Action": "lambda:InvokeFunction",
                "Principal": "events.amazonaws.com",
                "SourceArn": {"Fn::Sub": "arn:aws:events:${AWS::Region}:${AWS::AccountId}:rule/r"},
            },
        },
        "Watcher": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": "watcher",
                "Role": {"Fn::GetAtt": ["WatcherRole", "Arn"]},
                "Handler": "x.h",
            },
        },
        "Machine": {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineName": "lock-machine",
                "RoleArn": {"Fn::GetAtt": ["MachineRole", "Arn"]},
                "DefinitionString": "{}",
            },
        },
    }
}


@pytest.fixture(scope="session")
def evaluator() -> Iterator[Evaluator]:
    with Evaluator() as running:
        yield running


@pytest.fixture(scope="session")
def policy_set() -> PolicySet:
    return build_policy_set(TEMPLATE, ResourceMap(TEMPLATE, Sandbox(account_id=ACCOUNT, region=REGION)))


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto's own SDK calls (state machine integrations) go to localhost:MOTO_PORT.
    monkeypatch.setenv("MOTO_PORT", str(port))
    url = f"http://{host}:{port}"
    try:
        _reset(url)  # moto's backends live in this process: start from an empty account
        yield url
    finally:
        _reset(url)
        server.stop()


def _reset(url: str) -> None:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10):
        pass
