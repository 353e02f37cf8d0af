"""The local gateway's `@connections` API under IAM enforcement: a function's role needs
execute-api:ManageConnections on the stage, method and connection it calls, as on API Gateway."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import urllib3
from botocore.exceptions import ClientError

from orchestrator.engine.intrinsics import ResourceMap, Sandbox
from orchestrator.gateway.management import ManagementApi, PostResult, access_key_of
from orchestrator.iam.enforcer import ConnectionsAuthorizer, IamEnforcer
from orchestrator.iam.evaluator import Evaluator
from orchestrator.iam.identity import credentials_for
from orchestrator.iam.policies import build_policy_set

from .conftest import ACCOUNT, REGION, _policy, _role, role_arn


def _connections(route: str) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                f"arn:aws:execute-api:{REGION}:{ACCOUNT}:",
                {"Ref": "Api"},
                f"/{route}",
            ],
        ]
    }


def _manage(role: str, *routes: str) -> dict[str, Any]:
    return _policy(
        f"{role}Policy",
        role,
        {
            "Effect": "Allow",
            "Action": "execute-api:ManageConnections",
            "Resource": [_connections(route) for route in routes],
        },
    )


def _function(name: str, role: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {"FunctionName": name, "Role": {"Fn::GetAtt": [role, "Arn"]}, "Handler": "x.h"},
    }


TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Api": {
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {
                "Name": "ws",
                "ProtocolType": "WEBSOCKET",
                "RouteSelectionExpression": "$request.body.action",
            },
        },
        "PosterRole": _role("poster-role"),
        "PosterPolicy": _manage("PosterRole", "*/POST/@connections/*"),
        "DrainerRole": _role("drainer-role"),
        "DrainerPolicy": _manage("DrainerRole", "canary/DELETE/@connections/*"),
        "PinnedRole": _role("pinned-role"),
        "PinnedPolicy": _manage("PinnedRole", "live/POST/@connections/only-this="),
        "Fanout": _function("fanout", "PosterRole"),
        "Drain": _function("drain-canary", "DrainerRole"),
        "Pinned": _function("pinned", "PinnedRole"),
    }
}
RESOURCES = ResourceMap(TEMPLATE, Sandbox(account_id=ACCOUNT, region=REGION))
API_ID = RESOURCES.api_id("Api")


class _Hub:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def post(self, connection_id: str, data: bytes) -> PostResult:
        self.calls.append(("POST", connection_id))
        return "ok"

    def describe(self, connection_id: str) -> dict[str, Any] | None:
        self.calls.append(("GET", connection_id))
        return {"connectedAt": "2026-01-01T00:00:00Z"}

    def disconnect(self, connection_id: str) -> bool:
        self.calls.append(("DELETE", connection_id))
        return True


@pytest.fixture
def enforcer(evaluator: Evaluator) -> IamEnforcer:
    policies = build_policy_set(TEMPLATE, RESOURCES)
    assert not policies.unresolved
    return IamEnforcer(policies, evaluator)


@pytest.fixture
def gateway(enforcer: IamEnforcer) -> Iterator[tuple[ManagementApi, _Hub]]:
    hub = _Hub()
    api = ManagementApi(hub, {"live", "canary"}, authorize=ConnectionsAuthorizer(enforcer, API_ID)).start()
    try:
        yield api, hub
    finally:
        api.stop()


def _client(api: ManagementApi, stage: str, role: str | None) -> Any:
    keys: dict[str, str] = {"aws_access_key_id": "AKIAOPERATOR", "aws_secret_access_key": "operator"}
    if role is not None:
        c = credentials_for(role_arn(role))
        keys = {
            "aws_access_key_id": c.access_key_id,
            "aws_secret_access_key": c.secret_access_key,
            "aws_session_token": c.session_token,
        }
    return boto3.client(
        "apigatewaymanagementapi", endpoint_url=api.endpoint(stage), region_name=REGION, **keys
    )


def _denied(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as denied:
        call()
    return dict(denied.value.response)


def test_a_granted_role_posts_and_its_grant_is_recorded(
    gateway: tuple[ManagementApi, _Hub], enforcer: IamEnforcer
) -> None:
    api, hub = gateway
    fanout = _client(api, "live", "poster-role")
    fanout.post_to_connection(ConnectionId="c1=", Data=b"{}")
    fanout.post_to_connection(ConnectionId="c2=", Data=b"{}")
    assert hub.calls == [("POST", "c1="), ("POST", "c2=")]
    observed = [(o.action, o.resource, o.verdict, o.caller, n) for o, n in enforcer.observations]
    resource = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/live/POST/@connections/c1="
    # One question for the stage and method; the second post counts on the first's observation.
    assert observed == [("execute-api:ManageConnections", resource, "Allowed", "fanout", 2)]


def test_a_method_or_stage_outside_the_grant_is_denied_as_api_gateway_denies_it(
    gateway: tuple[ManagementApi, _Hub], enforcer: IamEnforcer
) -> None:
    api, hub = gateway
    response = _denied(lambda: _client(api, "live", "poster-role").delete_connection(ConnectionId="c1="))
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ForbiddenException",
        403,
    )
    resource = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/live/DELETE/@connections/c1="
    assert response["Error"]["Message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/poster-role/fanout is not authorized to perform: "
        f"execute-api:ManageConnections on resource: {resource} because no identity-based policy allows "
        "the execute-api:ManageConnections action"
    )
    drain = _client(api, "canary", "drainer-role")
    drain.delete_connection(ConnectionId="k1=")
    live_drain = _client(api, "live", "drainer-role")
    _denied(lambda: live_drain.delete_connection(ConnectionId="c1="))
    assert hub.calls == [("DELETE", "k1=")]  # nothing denied reached the hub
    assert {(o.caller, o.resource.rsplit(":", 1)[-1]) for o in enforcer.denials()} == {
        ("fanout", f"{API_ID}/live/DELETE/@connections/c1="),
        ("drain-canary", f"{API_ID}/live/DELETE/@connections/c1="),
    }


def test_a_role_that_names_connections_is_judged_request_by_request(
    gateway: tuple[ManagementApi, _Hub], evaluator: Evaluator
) -> None:
    api, hub = gateway
    pinned = _client(api, "live", "pinned-role")
    pinned.post_to_connection(ConnectionId="only-this=", Data=b"{}")
    _denied(lambda: pinned.post_to_connection(ConnectionId="another=", Data=b"{}"))
    assert hub.calls == [("POST", "only-this=")]


def test_the_operator_passes_and_an_unsigned_request_is_refused(gateway: tuple[ManagementApi, _Hub]) -> None:
    api, hub = gateway
    _client(api, "live", None).get_connection(ConnectionId="c1=")
    unsigned = urllib3.PoolManager().request("POST", f"{api.endpoint('live')}/@connections/c1=", body=b"{}")
    assert unsigned.status == 403
    assert unsigned.headers["x-amzn-ErrorType"] == "ForbiddenException"
    assert unsigned.json() == {"message": "Missing Authentication Token"}
    assert hub.calls == [("GET", "c1=")]


def test_the_access_key_is_read_from_a_sigv4_header() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261130/eu-west-1/execute-api/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    assert access_key_of(header) == "ASIAEXAMPLE"
    assert access_key_of("Basic Zm9vOmJhcg==") is None
    assert access_key_of(None) is None
