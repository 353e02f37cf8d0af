"""The KeyValueStore API under IAM enforcement: a task's role needs the grant on the store, as on AWS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from orchestrator.engine.intrinsics import ResourceMap, Sandbox
from orchestrator.iam.enforcer import IamEnforcer
from orchestrator.iam.evaluator import Evaluator
from orchestrator.iam.identity import credentials_for
from orchestrator.iam.policies import build_policy_set
from orchestrator.sandbox import emulation, keyvaluestore
from orchestrator.sandbox.keyvaluestore import STORES

from .conftest import ACCOUNT, REGION, _policy, _role, role_arn

STORE = {"Fn::GetAtt": ["CanaryStore", "Arn"]}
TEMPLATE: dict[str, Any] = {
    "Resources": {
        "CanaryStore": {"Type": "AWS::CloudFront::KeyValueStore", "Properties": {"Name": "canary-share"}},
        "OtherStore": {"Type": "AWS::CloudFront::KeyValueStore", "Properties": {"Name": "other"}},
        "WriterRole": _role("writer-role"),
        "WriterPolicy": _policy(
            "WriterPolicy",
            "WriterRole",
            {
                "Effect": "Allow",
                "Action": [
                    "cloudfront-keyvaluestore:DescribeKeyValueStore",
                    "cloudfront-keyvaluestore:GetKey",
                    "cloudfront-keyvaluestore:PutKey",
                ],
                "Resource": STORE,
            },
        ),
        "ReaderRole": _role("reader-role"),
        "ReaderPolicy": _policy(
            "ReaderPolicy",
            "ReaderRole",
            {
                "Effect": "Allow",
                "Action": [
                    "cloudfront-keyvaluestore:DescribeKeyValueStore",
                    "cloudfront-keyvaluestore:GetKey",
                ],
                "Resource": STORE,
            },
        ),
        "SetWeights": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": "set-weights",
                "Role": {"Fn::GetAtt": ["WriterRole", "Arn"]},
                "Handler": "x.h",
            },
        },
        "Judge": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": "judge",
                "Role": {"Fn::GetAtt": ["ReaderRole", "Arn"]},
                "Handler": "x.h",
            },
        },
    }
}
RESOURCES = ResourceMap(TEMPLATE, Sandbox(account_id=ACCOUNT, region=REGION))


@pytest.fixture
def stores(moto_server: str) -> Iterator[tuple[str, str]]:
    emulation.install()
    try:
        canary = STORES.create(RESOURCES.arn("CanaryStore"), "canary-share").arn
        other = STORES.create(RESOURCES.arn("OtherStore"), "other").arn
        yield canary, other
    finally:
        emulation.uninstall()


@pytest.fixture
def enforcer(evaluator: Evaluator) -> Iterator[IamEnforcer]:
    with IamEnforcer(build_policy_set(TEMPLATE, RESOURCES), evaluator) as installed:
        yield installed


def _kvs(url: str, role: str) -> Any:
    c = credentials_for(role_arn(role))
    return boto3.client(
        "cloudfront-keyvaluestore",
        endpoint_url=keyvaluestore.endpoint_url(url),
        region_name=REGION,
        aws_access_key_id=c.access_key_id,
        aws_secret_access_key=c.secret_access_key,
        aws_session_token=c.session_token,
    )


def test_the_granted_role_writes_the_share(
    moto_server: str, stores: tuple[str, str], enforcer: IamEnforcer
) -> None:
    canary, _ = stores
    writer = _kvs(moto_server, "writer-role")
    etag = writer.describe_key_value_store(KvsARN=canary)["ETag"]
    writer.put_key(KvsARN=canary, Key="canary_share", Value="10", IfMatch=etag)
    assert writer.get_key(KvsARN=canary, Key="canary_share")["Value"] == "10"
    observed = {(o.action, o.resource, o.verdict, o.caller) for o, _ in enforcer.observations}
    assert ("cloudfront-keyvaluestore:PutKey", canary, "Allowed", "set-weights") in observed


def test_a_role_without_the_grant_is_denied_as_aws_denies_it(
    moto_server: str, stores: tuple[str, str], enforcer: IamEnforcer
) -> None:
    canary, other = stores
    reader = _kvs(moto_server, "reader-role")
    etag = reader.describe_key_value_store(KvsARN=canary)["ETag"]  # granted
    with pytest.raises(ClientError) as denied:
        reader.put_key(KvsARN=canary, Key="canary_share", Value="100", IfMatch=etag)
    response = denied.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "AccessDeniedException",
        403,
    )
    assert response["Error"]["Message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/reader-role/judge is not authorized to perform: "
        f"cloudfront-keyvaluestore:PutKey on resource: {canary} because no identity-based policy allows "
        "the cloudfront-keyvaluestore:PutKey action"
    )
    assert STORES.items(canary) == {}
    # The writer's grant is on its store only.
    with pytest.raises(ClientError, match="AccessDenied"):
        _kvs(moto_server, "writer-role").describe_key_value_store(KvsARN=other)
    denials = {(o.action, o.resource) for o in enforcer.denials()}
    assert ("cloudfront-keyvaluestore:PutKey", canary) in denials
    assert ("cloudfront-keyvaluestore:DescribeKeyValueStore", other) in denials
