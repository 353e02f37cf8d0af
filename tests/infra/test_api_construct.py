"""The WebSocket API construct in isolation: routes, alias-routed integrations, stages, domain, grants."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from infra.api_construct import (
    ACCESS_LOG_FORMAT,
    ApiProps,
    ApiThrottle,
    WebSocketApiConstruct,
    origin_domain_name_for,
)
from service import catalog

ACCOUNT = "111111111111"
REGION = "eu-west-1"
ORIGIN = "origin-ws.staging.analytics.example.com"


def _build(**overrides: Any) -> tuple[Stack, WebSocketApiConstruct, iam.Role]:
    app = App()
    stack = Stack(app, "ApiTest", env=Environment(account=ACCOUNT, region=REGION))
    functions = {
        key: lambda_.Function.from_function_name(stack, f"Fn{key}", f"staging-realtime-{key}")
        for key in catalog.released_keys()
    }
    props: dict[str, Any] = dict(
        environment="staging",
        functions=functions,
        origin_domain_name=ORIGIN,
        regional_certificate_arn=f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/11111111-1111-4111-8111-111111111111",
        hosted_zone_id="Z0STAGING000000000001",
        hosted_zone_name="staging.analytics.example.com",
        logs_key=kms.Key(stack, "LogsKey"),
        log_retention_days=30,
        throttle={"live": ApiThrottle(rate_limit=500, burst_limit=1000), "preview": ApiThrottle(20, 40)},
    )
    props.update(overrides)
    api = WebSocketApiConstruct(stack, "Api", props=ApiProps(**props))
    role = iam.Role(stack, "FanoutRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    api.grant_manage_connections(role)
    return stack, api, role


@pytest.fixture(scope="module")
def built() -> tuple[Template, dict[str, Any]]:
    stack, _, _ = _build()
    template = Template.from_stack(stack)
    return template, template.to_json()


def _resources(template_json: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template_json["Resources"].items() if r["Type"] == kind}


def _joined(value: Any) -> str:
    """Flatten an Fn::Join into text with tokens shown as <Ref>/<Attr>, for readable assertions."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(_joined(part) for part in value["Fn::Join"][1])
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    return json.dumps(value)


def test_websocket_api_selects_routes_on_action_and_disables_default_endpoint(built) -> None:
    template, _ = built
    template.resource_count_is("AWS::ApiGatewayV2::Api", 1)
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {
            "ProtocolType": "WEBSOCKET",
            "RouteSelectionExpression": "$request.body.action",
            "DisableExecuteApiEndpoint": True,
        },
    )


def test_every_catalog_route_exists_and_only_connect_is_authorized(built) -> None:
    _, tpl = built
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in _resources(tpl, "AWS::ApiGatewayV2::Route").values()
    }
    assert (
        set(routes)
        == set(catalog.route_table())
        == {"$connect", "$disconnect", "$default", "subscribe", "unsubscribe", "ping"}
    )
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    assert "AuthorizerId" in routes["$connect"]
    for key in set(routes) - {"$connect"}:
        assert routes[key]["AuthorizationType"] == "NONE"
        assert "AuthorizerId" not in routes[key]


def test_routes_target_the_integration_of_their_catalog_function(built) -> None:
    _, tpl = built
    integrations = _resources(tpl, "AWS::ApiGatewayV2::Integration")
    by_id = {lid: _joined(r["Properties"]["IntegrationUri"]) for lid, r in integrations.items()}
    for route in _resources(tpl, "AWS::ApiGatewayV2::Route").values():
        props = route["Properties"]
        integration_id = props["Target"]["Fn::Join"][1][1]["Ref"]
        function_key = catalog.route_table()[props["RouteKey"]]
        assert (
            f"function:staging-realtime-{function_key}:${{stageVariables.alias}}/invocations"
            in by_id[integration_id]
        )


def test_integrations_and_authorizer_resolve_the_alias_from_the_stage_variable(built) -> None:
    _, tpl = built
    for integration in _resources(tpl, "AWS::ApiGatewayV2::Integration").values():
        props = integration["Properties"]
        assert props["IntegrationType"] == "AWS_PROXY"
        assert props["IntegrationMethod"] == "POST"
        assert _joined(props["IntegrationUri"]).endswith(":${stageVariables.alias}/invocations")
    (authorizer,) = _resources(tpl, "AWS::ApiGatewayV2::Authorizer").values()
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "REQUEST"
    assert props["IdentitySource"] == ["route.request.header.x-origin-verify"]
    assert "function:staging-realtime-authorizer:${stageVariables.alias}/invocations" in _joined(
        props["AuthorizerUri"]
    )


def test_three_stages_map_to_their_alias_with_throttling_and_json_access_logs(built) -> None:
    _, tpl = built
    stages = {r["Properties"]["StageName"]: r for r in _resources(tpl, "AWS::ApiGatewayV2::Stage").values()}
    assert set(stages) == {"live", "preview", "canary"}
    assert stages["live"]["Properties"]["StageVariables"] == {"alias": "live"}
    assert stages["preview"]["Properties"]["StageVariables"] == {"alias": "green"}
    # The connection canary: clients the edge moved off `live` run on green.
    assert stages["canary"]["Properties"]["StageVariables"] == {"alias": "green"}
    # The canary stage carries a share of live's clients: live's limits, not preview's.
    expected_throttle = {"live": (500, 1000), "preview": (20, 40), "canary": (500, 1000)}
    (log_group_id,) = _resources(tpl, "AWS::Logs::LogGroup")
    for name, stage in stages.items():
        props = stage["Properties"]
        assert props["AutoDeploy"] is True
        settings = props["DefaultRouteSettings"]
        assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == expected_throttle[name]
        assert settings["LoggingLevel"] == "ERROR"
        assert settings["DataTraceEnabled"] is False
        assert props["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": [log_group_id, "Arn"]}
        assert json.loads(props["AccessLogSettings"]["Format"]) == dict(ACCESS_LOG_FORMAT)
        # Deployed only after every route exists and the account logging role is set.
        route_ids = set(_resources(tpl, "AWS::ApiGatewayV2::Route"))
        assert route_ids <= set(stage["DependsOn"])


def test_access_log_group_is_kms_encrypted_with_retention(built) -> None:
    template, _ = built
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"RetentionInDays": 30, "KmsKeyId": {"Fn::GetAtt": [Match.string_like_regexp("LogsKey"), "Arn"]}},
    )


def test_lambda_permissions_pair_each_alias_with_its_own_stages(built) -> None:
    _, tpl = built
    seen: dict[tuple[str, str], set[str]] = {}
    for permission in _resources(tpl, "AWS::Lambda::Permission").values():
        props = permission["Properties"]
        assert props["Principal"] == "apigateway.amazonaws.com"
        assert props["Action"] == "lambda:InvokeFunction"
        assert props["SourceAccount"] == ACCOUNT
        function = _joined(props["FunctionName"])
        key, alias = function.rsplit(":", 2)[-2:]
        key = key.removeprefix("staging-realtime-")
        seen.setdefault((key, alias), set()).add(_joined(props["SourceArn"]).rsplit(":", 1)[-1])
    integrated = set(catalog.route_table().values())
    assert set(seen) == {(key, alias) for key in integrated | {"authorizer"} for alias in ("live", "green")}
    api_id = next(iter(_resources(tpl, "AWS::ApiGatewayV2::Api")))
    authorizer_id = next(iter(_resources(tpl, "AWS::ApiGatewayV2::Authorizer")))
    for (key, alias), sources in seen.items():
        if key == "authorizer":
            # One per alias: an authorizer's source ARN names no stage.
            assert sources == {f"<{api_id}>/authorizers/<{authorizer_id}>"}
        else:
            # `live` only from the live stage; `green` from preview and from the connection canary.
            stages = {"live"} if alias == "live" else {"preview", "canary"}
            assert sources == {f"<{api_id}>/{stage}/*" for stage in stages}, (key, alias)


def test_custom_domain_is_regional_tls12_policy_with_stage_named_mappings_and_alias_record(built) -> None:
    template, tpl = built
    template.has_resource_properties(
        "AWS::ApiGatewayV2::DomainName",
        {
            "DomainName": ORIGIN,
            "DomainNameConfigurations": [
                Match.object_like({"EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"})
            ],
        },
    )
    mappings = {
        r["Properties"]["ApiMappingKey"]: r["Properties"]
        for r in _resources(tpl, "AWS::ApiGatewayV2::ApiMapping").values()
    }
    assert set(mappings) == {"live", "preview", "canary"}
    stage_ids = {
        r["Properties"]["StageName"]: lid for lid, r in _resources(tpl, "AWS::ApiGatewayV2::Stage").items()
    }
    for key, mapping in mappings.items():
        assert mapping["Stage"] == {"Ref": stage_ids[key]}
    template.has_resource_properties(
        "AWS::Route53::RecordSet",
        {
            "Name": f"{ORIGIN}.",
            "Type": "A",
            "HostedZoneId": "Z0STAGING000000000001",
            "AliasTarget": Match.any_value(),
        },
    )


def test_manage_connections_grant_is_scoped_to_the_apis_stages(built) -> None:
    _, tpl = built
    statements = [
        statement
        for policy in _resources(tpl, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "execute-api:ManageConnections"
    ]
    assert len(statements) == 1
    resources = sorted(_joined(resource) for resource in statements[0]["Resource"])
    api_id = next(iter(_resources(tpl, "AWS::ApiGatewayV2::Api")))
    # Every stage: fan-out posts to clients on the canary stage like to those on live.
    assert resources == [
        f"arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<{api_id}>/canary/*/@connections/*",
        f"arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<{api_id}>/live/*/@connections/*",
        f"arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<{api_id}>/preview/*/@connections/*",
    ]


def test_account_logging_role_is_optional() -> None:
    stack, _, _ = _build(manage_account_logging_role=False)
    Template.from_stack(stack).resource_count_is("AWS::ApiGateway::Account", 0)


def test_urls_use_the_origin_domain_and_stage_as_mapping_key() -> None:
    _, api, _ = _build()
    assert api.stage_url("preview") == f"wss://{ORIGIN}/preview"
    assert api.connections_endpoint("live") == f"https://{ORIGIN}/live"
    assert api.connections_endpoint("canary") == f"https://{ORIGIN}/canary"


def test_connections_arn_names_one_stage_and_method() -> None:
    stack, api, _ = _build()
    arn = stack.resolve(api.connections_arn("canary", "DELETE"))
    assert _joined(arn).endswith("/canary/DELETE/@connections/*")
    with pytest.raises(ValueError, match="no stage 'nightly'"):
        api.connections_arn("nightly")


def test_missing_function_or_stage_throttle_is_refused_by_name() -> None:
    app = App()
    stack = Stack(app, "Bad", env=Environment(account=ACCOUNT, region=REGION))
    with pytest.raises(ValueError, match="no function for catalog key"):
        WebSocketApiConstruct(
            stack,
            "Api",
            props=ApiProps(
                environment="staging",
                functions={},
                origin_domain_name=ORIGIN,
                regional_certificate_arn=f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/x",
                hosted_zone_id="Z1",
                hosted_zone_name="example.com",
                logs_key=kms.Key(stack, "K"),
                log_retention_days=30,
                throttle={},
            ),
        )
    with pytest.raises(ValueError, match="throttle needs exactly the stages"):
        _build(throttle={"live": ApiThrottle(1, 1)})
    # The canary stage is not configured: it takes live's limits.
    with pytest.raises(ValueError, match=r"throttle needs exactly the stages \['live', 'preview'\]"):
        _build(
            throttle={"live": ApiThrottle(1, 1), "preview": ApiThrottle(1, 1), "canary": ApiThrottle(1, 1)}
        )


def test_origin_domain_is_a_sibling_of_the_public_name() -> None:
    assert origin_domain_name_for("ws.example.com") == "origin-ws.example.com"
    with pytest.raises(ValueError, match="no parent domain"):
        origin_domain_name_for("localhost")
