"""The connection-level canary in the synthesized stages: edge function and store, canary stage, task grants.

contracts/canary.py names what the pieces share; this checks they are wired to each other: the
edge function reads the store the release tasks write, the canary stage routes to `green`, and
each task holds exactly the canary grants its catalog entry names, on exactly these resources.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from contracts import names
from contracts.canary import CANARY_CONNECTIONS_ENDPOINT_VARIABLE, CANARY_KVS_ARN_VARIABLE, CANARY_STAGE
from infra.api_construct import origin_domain_name_for
from infra.config import EnvironmentConfig
from infra.edge_construct import CANARY_ROUTER_SOURCE
from tasks.catalog import TASKS

KVS_ACTIONS = {
    "cloudfront-keyvaluestore:DescribeKeyValueStore",
    "cloudfront-keyvaluestore:GetKey",
    "cloudfront-keyvaluestore:PutKey",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _only(template: Template, kind: str) -> tuple[str, dict[str, Any]]:
    found = template.find_resources(kind)
    assert len(found) == 1, f"{kind}: {sorted(found)}"
    ((logical_id, resource),) = found.items()
    return logical_id, resource["Properties"]


def _joined(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(_joined(part) for part in value["Fn::Join"][1])
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    return json.dumps(value, sort_keys=True)


def _task_function(template: Template, env: str, key: str) -> dict[str, Any]:
    name = names.task_function_name(env, key)
    (function,) = [
        f["Properties"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("FunctionName") == name
    ]
    return function


def _role_statements(template: Template, role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _task_statements(template: Template, env: str, key: str) -> list[dict[str, Any]]:
    return _role_statements(template, _task_function(template, env, key)["Role"]["Fn::GetAtt"][0])


def _granting(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if s["Effect"] == "Allow" and action in _as_list(s["Action"])]


def test_edge_function_reads_the_store_the_tasks_write(env_template: tuple[str, Template]) -> None:
    env, template = env_template
    store_id, store = _only(template, "AWS::CloudFront::KeyValueStore")
    assert store["Name"] == names.canary_store_name(env)
    function_id, function = _only(template, "AWS::CloudFront::Function")
    assert function["Name"] == names.canary_router_function_name(env)
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert function["FunctionConfig"]["KeyValueStoreAssociations"] == [
        {"KeyValueStoreARN": {"Fn::GetAtt": [store_id, "Arn"]}}
    ]
    assert function["FunctionCode"] == CANARY_ROUTER_SOURCE.read_text(encoding="utf-8")
    _, distribution = _only(template, "AWS::CloudFront::Distribution")
    behavior = distribution["DistributionConfig"]["DefaultCacheBehavior"]
    assert behavior["FunctionAssociations"] == [
        {"EventType": "viewer-request", "FunctionARN": {"Fn::GetAtt": [function_id, "FunctionARN"]}}
    ]
    # Every task granted the store finds it in its environment: the same store.
    writers = [task.key for task in TASKS if "canary_store" in task.permissions]
    assert writers
    for task in TASKS:
        variables = _task_function(template, env, task.key)["Environment"]["Variables"]
        if task.key in writers:
            assert variables[CANARY_KVS_ARN_VARIABLE] == {"Fn::GetAtt": [store_id, "Arn"]}, task.key
        else:
            assert CANARY_KVS_ARN_VARIABLE not in variables, task.key


def test_canary_stage_routes_to_green_under_its_own_mapping_key(env_template: tuple[str, Template]) -> None:
    _, template = env_template
    stages = {
        s["Properties"]["StageName"]: (lid, s["Properties"])
        for lid, s in template.find_resources("AWS::ApiGatewayV2::Stage").items()
    }
    stage_id, stage = stages[CANARY_STAGE]
    assert stage["StageVariables"] == {"alias": "green"}
    assert stage["AccessLogSettings"] == stages["live"][1]["AccessLogSettings"]
    mappings = {
        m["Properties"]["ApiMappingKey"]: m["Properties"]
        for m in template.find_resources("AWS::ApiGatewayV2::ApiMapping").values()
    }
    assert mappings[CANARY_STAGE]["Stage"] == {"Ref": stage_id}


def test_store_grant_is_the_three_actions_on_the_store_only(env_template: tuple[str, Template]) -> None:
    env, template = env_template
    store_id, _ = _only(template, "AWS::CloudFront::KeyValueStore")
    for task in TASKS:
        statements = [
            s
            for s in _task_statements(template, env, task.key)
            if any(a.startswith("cloudfront-keyvaluestore:") for a in _as_list(s["Action"]))
        ]
        if "canary_store" not in task.permissions:
            assert not statements, task.key
            continue
        (statement,) = statements
        assert set(_as_list(statement["Action"])) == KVS_ACTIONS, task.key
        assert _as_list(statement["Resource"]) == [{"Fn::GetAtt": [store_id, "Arn"]}], task.key


def test_drain_may_only_close_canary_connections(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    (api_id,) = template.find_resources("AWS::ApiGatewayV2::Api")
    for task in TASKS:
        granted = _granting(_task_statements(template, env, task.key), "execute-api:ManageConnections")
        if "canary_drain" not in task.permissions:
            assert not granted, task.key
            continue
        (statement,) = granted
        assert [_joined(r) for r in _as_list(statement["Resource"])] == [
            f"arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<{api_id}>/{CANARY_STAGE}/DELETE/@connections/*"
        ]
    drain = _task_function(template, env, "drain_canary")
    origin = origin_domain_name_for(configs[env].domain.domain_name)
    # The stage's `@connections` through the origin domain: the endpoint its connections registered.
    assert (
        drain["Environment"]["Variables"][CANARY_CONNECTIONS_ENDPOINT_VARIABLE] == f"https://{origin}/canary"
    )


def test_only_the_alarm_rollback_may_invoke_the_drain_and_nothing_else(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    config = configs[env]
    drain_arn = (
        f"arn:<AWS::Partition>:lambda:{config.region}:{config.account}:function:"
        f"{names.task_function_name(env, 'drain_canary')}"
    )
    for task in TASKS:
        granted = _granting(_task_statements(template, env, task.key), "lambda:InvokeFunction")
        if "drain_invoke" not in task.permissions:
            assert not granted, task.key
            continue
        (statement,) = granted
        assert statement["Action"] == "lambda:InvokeFunction", task.key
        assert [_joined(r) for r in _as_list(statement["Resource"])] == [drain_arn], task.key
    assert [task.key for task in TASKS if "drain_invoke" in task.permissions] == ["alarm_rollback"]
