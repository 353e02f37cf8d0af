"""The sandbox's CloudFront KeyValueStore, called with a real boto3 client (SigV4A, botocore's
endpoint rules) as the release tasks call it: over HTTP to the moto server, and in-process under
mock_aws. Also: the deployer creates the template's stores where `Fn::GetAtt [Store, Arn]` points."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from orchestrator.engine.intrinsics import ResourceMap, Sandbox, resolve
from orchestrator.sandbox import emulation, keyvaluestore
from orchestrator.sandbox.keyvaluestore import STORES

ACCOUNT = "123456789012"
REGION = "eu-west-1"
OPERATOR = {"aws_access_key_id": "AKIAOPERATOR00000000", "aws_secret_access_key": "operator"}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    emulation.install()
    try:
        yield f"http://127.0.0.1:{moto.get_host_and_port()[1]}"
    finally:
        emulation.uninstall()
        moto.stop()


@pytest.fixture
def kvs(server: str) -> Any:
    return boto3.client(
        "cloudfront-keyvaluestore",
        endpoint_url=keyvaluestore.endpoint_url(server),
        region_name=REGION,
        **OPERATOR,
    )


@pytest.fixture
def arn(server: str) -> Iterator[str]:
    store = STORES.create_in(ACCOUNT, "staging-canary")
    yield store.arn


def _code(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_endpoint_keeps_the_host_the_rules_would_prefix_with_the_account() -> None:
    # The endpoint rules build {scheme}://{accountId}.{authority}: the account lands in the userinfo.
    assert keyvaluestore.endpoint_url("http://127.0.0.1:5000") == "http://kvs@127.0.0.1:5000"
    assert keyvaluestore.endpoint_url("http://kvs@127.0.0.1:5000/") == "http://kvs@127.0.0.1:5000/"


def test_a_new_store_is_empty_and_ready(kvs: Any, arn: str) -> None:
    described = kvs.describe_key_value_store(KvsARN=arn)
    assert re.fullmatch(
        rf"arn:aws:cloudfront::{ACCOUNT}:key-value-store/[0-9a-f-]{{36}}", described["KvsARN"]
    )
    assert described["KvsARN"] == arn
    assert (described["ItemCount"], described["TotalSizeInBytes"], described["Status"]) == (0, 0, "READY")
    assert described["ETag"] and described["Created"] and described["LastModified"]
    assert kvs.list_keys(KvsARN=arn)["Items"] == []


def test_a_missing_key_is_not_found(kvs: Any, arn: str) -> None:
    assert _code(lambda: kvs.get_key(KvsARN=arn, Key="canary_share")) == ("ResourceNotFoundException", 404)


def test_put_needs_the_current_etag_and_changes_it(kvs: Any, arn: str) -> None:
    etag = kvs.describe_key_value_store(KvsARN=arn)["ETag"]
    put = kvs.put_key(KvsARN=arn, Key="canary_share", Value="10", IfMatch=etag)
    assert put["ETag"] != etag and (put["ItemCount"], put["TotalSizeInBytes"]) == (1, len("canary_share10"))
    assert kvs.describe_key_value_store(KvsARN=arn)["ETag"] == put["ETag"]
    got = kvs.get_key(KvsARN=arn, Key="canary_share")
    assert (got["Key"], got["Value"], got["ItemCount"]) == ("canary_share", "10", 1)
    # Another writer's ETag is stale now: 409 ConflictException, and nothing is written.
    assert _code(lambda: kvs.put_key(KvsARN=arn, Key="canary_share", Value="50", IfMatch=etag)) == (
        "ConflictException",
        409,
    )
    assert kvs.get_key(KvsARN=arn, Key="canary_share")["Value"] == "10"
    # Writing the same value again is still a change of version.
    again = kvs.put_key(KvsARN=arn, Key="canary_share", Value="10", IfMatch=put["ETag"])
    assert again["ETag"] != put["ETag"]


def test_delete_needs_the_etag_and_an_existing_key(kvs: Any, arn: str) -> None:
    etag = kvs.describe_key_value_store(KvsARN=arn)["ETag"]
    assert _code(lambda: kvs.delete_key(KvsARN=arn, Key="nope", IfMatch=etag)) == (
        "ResourceNotFoundException",
        404,
    )
    etag = kvs.put_key(KvsARN=arn, Key="k", Value="v", IfMatch=etag)["ETag"]
    assert _code(lambda: kvs.delete_key(KvsARN=arn, Key="k", IfMatch="KVSTALE")) == ("ConflictException", 409)
    deleted = kvs.delete_key(KvsARN=arn, Key="k", IfMatch=etag)
    assert deleted["ItemCount"] == 0 and deleted["ETag"] != etag
    assert _code(lambda: kvs.get_key(KvsARN=arn, Key="k")) == ("ResourceNotFoundException", 404)


def test_update_keys_at_once_and_list_them_in_pages(kvs: Any, arn: str) -> None:
    etag = kvs.describe_key_value_store(KvsARN=arn)["ETag"]
    etag = kvs.update_keys(
        KvsARN=arn, IfMatch=etag, Puts=[{"Key": f"k{i:02d}", "Value": str(i)} for i in range(25)]
    )["ETag"]
    updated = kvs.update_keys(
        KvsARN=arn, IfMatch=etag, Puts=[{"Key": "k00", "Value": "x"}], Deletes=[{"Key": "k01"}]
    )
    assert updated["ItemCount"] == 24
    pages = list(kvs.get_paginator("list_keys").paginate(KvsARN=arn, PaginationConfig={"PageSize": 10}))
    assert [len(p["Items"]) for p in pages] == [10, 10, 4]
    items = {i["Key"]: i["Value"] for p in pages for i in p["Items"]}
    assert items["k00"] == "x" and "k01" not in items and len(items) == 24
    assert _code(lambda: kvs.list_keys(KvsARN=arn, MaxResults=51)) == ("ValidationException", 400)


def test_limits_and_unknown_stores(kvs: Any, arn: str) -> None:
    etag = kvs.describe_key_value_store(KvsARN=arn)["ETag"]
    assert _code(lambda: kvs.put_key(KvsARN=arn, Key="big", Value="x" * 1025, IfMatch=etag)) == (
        "ValidationException",
        400,
    )
    gone = f"arn:aws:cloudfront::{ACCOUNT}:key-value-store/00000000-0000-4000-8000-000000000000"
    assert _code(lambda: kvs.describe_key_value_store(KvsARN=gone)) == ("ResourceNotFoundException", 404)
    assert _code(lambda: kvs.get_key(KvsARN=gone, Key="k")) == ("ResourceNotFoundException", 404)


def test_the_edge_reads_what_the_api_wrote(kvs: Any, arn: str) -> None:
    etag = kvs.describe_key_value_store(KvsARN=arn)["ETag"]
    kvs.put_key(KvsARN=arn, Key="canary_share", Value="25", IfMatch=etag)
    assert STORES.items(arn) == {"canary_share": "25"}


def test_in_process_under_mock_aws(server: str) -> None:
    # mock_aws answers through moto's stubber: a client with AWS's own endpoint reaches the stand-in.
    from moto import mock_aws

    with mock_aws():
        store = STORES.create_in(ACCOUNT, "in-process")
        client = boto3.client("cloudfront-keyvaluestore", region_name=REGION, **OPERATOR)
        etag = client.describe_key_value_store(KvsARN=store.arn)["ETag"]
        client.put_key(KvsARN=store.arn, Key="canary_share", Value="100", IfMatch=etag)
        assert client.get_key(KvsARN=store.arn, Key="canary_share")["Value"] == "100"
        with pytest.raises(ClientError, match="ConflictException"):
            client.put_key(KvsARN=store.arn, Key="canary_share", Value="0", IfMatch=etag)


def test_the_release_task_writes_the_share_through_the_sandbox(
    server: str, arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tasks/canary_share.py as a task runs it: its client finds the endpoint in the environment.
    from tasks import canary_share
    from tasks import common as task_common

    monkeypatch.setenv(keyvaluestore.ENDPOINT_VARIABLE, keyvaluestore.endpoint_url(server))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", OPERATOR["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", OPERATOR["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr(task_common, "_clients", {})
    settings = SimpleNamespace(canary_kvs_arn=arn)
    first = canary_share.set_share(settings, 10)  # type: ignore[arg-type]
    assert (first.percent, first.previous, first.written) == (10, 0, True)
    assert canary_share.set_share(settings, 10).written is False  # type: ignore[arg-type]
    assert STORES.items(arn) == {"canary_share": "10"}


TEMPLATE: dict[str, Any] = {
    "Resources": {
        "CanaryStore": {
            "Type": "AWS::CloudFront::KeyValueStore",
            "Properties": {"Name": "staging-canary-share", "Comment": "share"},
        },
        "CanaryRouter": {
            "Type": "AWS::CloudFront::Function",
            "Properties": {
                "Name": "staging-canary-router",
                "AutoPublish": True,
                "FunctionCode": "function handler(event) { return event.request; }",
                "FunctionConfig": {
                    "Comment": "router",
                    "Runtime": "cloudfront-js-2.0",
                    "KeyValueStoreAssociations": [
                        {"KeyValueStoreARN": {"Fn::GetAtt": ["CanaryStore", "Arn"]}}
                    ],
                },
            },
        },
        "Edge": {
            "Type": "AWS::CloudFront::Distribution",
            "Properties": {
                "DistributionConfig": {
                    "DefaultCacheBehavior": {
                        "FunctionAssociations": [
                            {
                                "EventType": "viewer-request",
                                "FunctionARN": {"Fn::GetAtt": ["CanaryRouter", "FunctionARN"]},
                            }
                        ]
                    }
                }
            },
        },
    }
}


def test_the_template_store_resolves_to_the_store_the_deployer_creates() -> None:
    from orchestrator.sandbox.deploy import Deployer

    sandbox = Sandbox(account_id=ACCOUNT, region=REGION, stack_name="staging")
    resources = ResourceMap(TEMPLATE, sandbox)
    arn = resolve({"Fn::GetAtt": ["CanaryStore", "Arn"]}, resources)
    assert re.fullmatch(
        rf"arn:aws:cloudfront::{ACCOUNT}:key-value-store/[0-9a-f]{{8}}(-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}}",
        arn,
    )
    assert resolve({"Ref": "CanaryStore"}, resources) == "staging-canary-share"
    assert resolve({"Fn::GetAtt": ["CanaryStore", "Id"]}, resources) == arn.rsplit("/", 1)[-1]
    deployer = Deployer(SimpleNamespace(sandbox=sandbox), TEMPLATE, env_overrides={})  # type: ignore[arg-type]
    deployer._key_value_stores()
    deployer._edge_functions()
    try:
        assert deployer.out.key_value_stores == {"staging-canary-share": arn}
        assert STORES.items(arn) == {}
        [edge] = deployer.out.edge_functions
        assert (edge.logical_id, edge.name, edge.runtime, edge.stores, edge.viewer_request) == (
            "CanaryRouter",
            "staging-canary-router",
            "cloudfront-js-2.0",
            (arn,),
            True,
        )
        deployer._key_value_stores()  # a second deployment in this process starts it empty again
    finally:
        STORES.clear()
