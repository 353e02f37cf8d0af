"""The WebSocket API as wired into each stage's main stack (templates synthesized with the gates)."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from contracts import names
from infra.api_construct import origin_domain_name_for
from infra.config import EnvironmentConfig
from service import catalog


def _of(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return template.find_resources(kind)


def _function_ids(template: Template, env: str) -> dict[str, str]:
    """Catalog key -> logical id of the deployed function (by its physical name)."""
    return {
        props["Properties"]["FunctionName"].removeprefix(f"{env}-realtime-"): lid
        for lid, props in _of(template, "AWS::Lambda::Function").items()
        if isinstance(props["Properties"].get("FunctionName"), str)
        and props["Properties"]["FunctionName"].removeprefix(f"{env}-realtime-") in catalog.released_keys()
    }


def test_integrations_target_each_service_function_through_the_stage_alias(env_template) -> None:
    env, template = env_template
    functions = _function_ids(template, env)
    assert set(functions) == set(catalog.released_keys())
    uris = [
        json.dumps(i["Properties"]["IntegrationUri"])
        for i in _of(template, "AWS::ApiGatewayV2::Integration").values()
    ]
    for key in set(catalog.route_table().values()):
        assert any(
            f'["{functions[key]}", "Arn"]' in uri and ":${stageVariables.alias}/invocations" in uri
            for uri in uris
        ), key
    (authorizer,) = _of(template, "AWS::ApiGatewayV2::Authorizer").values()
    uri = json.dumps(authorizer["Properties"]["AuthorizerUri"])
    assert f'["{functions["authorizer"]}", "Arn"]' in uri and ":${stageVariables.alias}/invocations" in uri


def test_alias_permissions_wait_for_the_aliases_they_name(env_template) -> None:
    env, template = env_template
    aliases = {
        (props["Properties"]["Name"], json.dumps(props["Properties"]["FunctionName"])): lid
        for lid, props in _of(template, "AWS::Lambda::Alias").items()
    }
    permissions = [
        p
        for p in _of(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    # Each integrated function per stage (live, preview, canary), the authorizer per alias (live, green).
    assert len(permissions) == 3 * len(set(catalog.route_table().values())) + 2
    for permission in permissions:
        depends = set(permission.get("DependsOn", []))
        assert set(aliases.values()) <= depends


def test_throttling_and_log_retention_come_from_configuration(
    env_template, configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    config = configs[env]
    stages = {
        s["Properties"]["StageName"]: s["Properties"]
        for s in _of(template, "AWS::ApiGatewayV2::Stage").values()
    }
    assert stages["live"]["DefaultRouteSettings"]["ThrottlingRateLimit"] == config.api.live_rate_limit
    assert stages["live"]["DefaultRouteSettings"]["ThrottlingBurstLimit"] == config.api.live_burst_limit
    assert stages["preview"]["DefaultRouteSettings"]["ThrottlingRateLimit"] == config.api.preview_rate_limit
    assert stages["preview"]["DefaultRouteSettings"]["ThrottlingBurstLimit"] == config.api.preview_burst_limit
    # The connection canary carries a share of live's clients: live's limits.
    assert stages["canary"]["DefaultRouteSettings"]["ThrottlingRateLimit"] == config.api.live_rate_limit
    assert stages["canary"]["DefaultRouteSettings"]["ThrottlingBurstLimit"] == config.api.live_burst_limit
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "LogGroupName": f"/aws/apigateway/{env}-realtime-websocket/access",
            "RetentionInDays": config.log_retention_days,
        },
    )


def test_origin_domain_uses_the_regional_certificate_and_hosted_zone_from_configuration(
    env_template, configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    domain = configs[env].domain
    origin = origin_domain_name_for(domain.domain_name)
    (name,) = _of(template, "AWS::ApiGatewayV2::DomainName").values()
    assert name["Properties"]["DomainName"] == origin
    assert (
        name["Properties"]["DomainNameConfigurations"][0]["CertificateArn"] == domain.regional_certificate_arn
    )
    records = [r["Properties"] for r in _of(template, "AWS::Route53::RecordSet").values()]
    assert {"Name": f"{origin}.", "HostedZoneId": domain.hosted_zone_id} in [
        {"Name": r["Name"], "HostedZoneId": r["HostedZoneId"]} for r in records
    ]


def test_only_functions_that_post_to_clients_may_manage_connections(env_template) -> None:
    env, template = env_template
    roles_with_grant = set()
    drain_role = next(
        f["Properties"]["Role"]["Fn::GetAtt"][0]
        for f in _of(template, "AWS::Lambda::Function").values()
        if f["Properties"].get("FunctionName") == names.task_function_name(env, "drain_canary")
    )
    for policy in _of(template, "AWS::IAM::Policy").values():
        roles = {role["Ref"] for role in policy["Properties"]["Roles"]}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "execute-api:ManageConnections" in json.dumps(statement["Action"]):
                assert statement["Effect"] == "Allow"
                resources = json.dumps(statement["Resource"])
                if roles == {drain_role}:
                    # The canary drain closes canary connections: DELETE on the canary stage only.
                    assert "/canary/DELETE/@connections/*" in resources and "/live/" not in resources
                    continue
                for stage in ("live", "preview", "canary"):
                    assert f"/{stage}/*/@connections/*" in resources, stage
                roles_with_grant.update(roles)
    role_of = {
        key: _of(template, "AWS::Lambda::Function")[lid]["Properties"]["Role"]["Fn::GetAtt"][0]
        for key, lid in _function_ids(template, env).items()
    }
    assert {key for key, role in role_of.items() if role in roles_with_grant} == {"fanout", "messages"}


def test_authorizer_reads_the_origin_secret_it_checks(env_template) -> None:
    env, template = env_template
    functions = _of(template, "AWS::Lambda::Function")
    authorizer = functions[_function_ids(template, env)["authorizer"]]["Properties"]
    (secret_id,) = [
        lid
        for lid, s in _of(template, "AWS::SecretsManager::Secret").items()
        if s["Properties"].get("Name") == f"{env}/realtime/origin-verify"
    ]
    assert authorizer["Environment"]["Variables"]["ORIGIN_SECRET_ARN"] == {"Ref": secret_id}
    role_id = authorizer["Role"]["Fn::GetAtt"][0]
    granted = [
        statement
        for policy in _of(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Resource"] == {"Ref": secret_id}
    ]
    assert granted and "secretsmanager:GetSecretValue" in json.dumps(granted)


def test_stack_name_and_api_name_follow_the_environment(env_template) -> None:
    env, template = env_template
    (api,) = _of(template, "AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["Name"] == f"{env}-realtime-websocket"
    assert api["Properties"]["DisableExecuteApiEndpoint"] is True
    assert names.stack_name(env) == f"{env}-realtime-analytics-stack"
