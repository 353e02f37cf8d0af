"""Template intrinsics resolved to sandbox ARNs, and errors that name the logical id."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.engine.intrinsics import (
    ResourceMap,
    Sandbox,
    UnresolvableIntrinsic,
    lambda_functions,
    resolve,
    state_machines,
)

SB = Sandbox(account_id="111122223333", region="us-east-2", stack_name="Stage-Release")


def _template(definition: Any, **extra: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "FnA1B2C3D4": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "deploy-green",
                    "Handler": "tasks.deploy_green.handler",
                    "Timeout": 120,
                    "MemorySize": 256,
                    "Environment": {
                        "Variables": {"LOCK_TABLE": {"Ref": "LocksE5F6"}, "TOPIC": {"Ref": "TopicAB12"}}
                    },
                },
            },
            "Unnamed9F9F": {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "index.handler"}},
            "LocksE5F6": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "release-locks"}},
            "TopicAB12": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "QueueCD34": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "events"}},
            "ChildSM": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"StateMachineName": "child", "DefinitionString": "{}"},
            },
            "RoleEF56": {"Type": "AWS::IAM::Role", "Properties": {}},
            "LogsGH78": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": "/aws/vendedlogs/states/release"},
            },
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": {"Fn::GetAtt": ["RoleEF56", "Arn"]},
                    "DefinitionString": definition,
                    "TracingConfiguration": {"Enabled": True},
                    "LoggingConfiguration": {
                        "Level": "ALL",
                        "IncludeExecutionData": True,
                        "Destinations": [
                            {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["LogsGH78", "Arn"]}}}
                        ],
                    },
                    **extra,
                },
            },
        }
    }


def _join(*parts: Any) -> dict[str, Any]:
    return {"Fn::Join": ["", list(parts)]}


def test_cdk_style_definition_string_resolves_to_concrete_asl() -> None:
    definition = _join(
        '{"StartAt":"Deploy","States":{"Deploy":{"Type":"Task","Resource":"arn:',
        {"Ref": "AWS::Partition"},
        ':states:::lambda:invoke","Parameters":{"FunctionName":"',
        {"Fn::GetAtt": ["FnA1B2C3D4", "Arn"]},
        '","Payload.$":"$"},"Next":"Notify"},"Notify":{"Type":"Task","Resource":"arn:',
        {"Ref": "AWS::Partition"},
        ':states:::sns:publish","Parameters":{"TopicArn":"',
        {"Ref": "TopicAB12"},
        '","Message":"${Greeting}"},"Next":"Child"},"Child":{"Type":"Task","Resource":"arn:aws:states:::states:startExecution","Parameters":{"StateMachineArn":"',
        {"Ref": "ChildSM"},
        '","Input":{"url":"https://sqs.',
        {"Ref": "AWS::Region"},
        ".",
        {"Ref": "AWS::URLSuffix"},
        '","queue":"',
        {"Ref": "QueueCD34"},
        '","table":"',
        {"Fn::GetAtt": ["LocksE5F6", "Arn"]},
        '","account":"',
        {"Ref": "AWS::AccountId"},
        '"}},"End":true}}}',
    )
    spec = state_machines(
        _template(
            definition, DefinitionSubstitutions={"Greeting": {"Fn::Sub": "hello from ${AWS::StackName}"}}
        ),
        ResourceMap(_template(definition), SB),
    )["Machine"]
    asl = spec.asl
    assert (
        asl["States"]["Deploy"]["Parameters"]["FunctionName"]
        == "arn:aws:lambda:us-east-2:111122223333:function:deploy-green"
    )
    assert (
        asl["States"]["Notify"]["Parameters"]["TopicArn"]
        == "arn:aws:sns:us-east-2:111122223333:Stage-Release-TopicAB12"
    )
    assert asl["States"]["Notify"]["Parameters"]["Message"] == "hello from Stage-Release"
    child = asl["States"]["Child"]["Parameters"]
    assert child["StateMachineArn"] == "arn:aws:states:us-east-2:111122223333:stateMachine:child"
    assert child["Input"] == {
        "url": "https://sqs.us-east-2.amazonaws.com",
        "queue": "https://sqs.us-east-2.amazonaws.com/111122223333/events",
        "table": "arn:aws:dynamodb:us-east-2:111122223333:table/release-locks",
        "account": "111122223333",
    }
    assert spec.name == "Stage-Release-Machine"
    assert spec.arn == "arn:aws:states:us-east-2:111122223333:stateMachine:Stage-Release-Machine"
    assert spec.role_arn == "arn:aws:iam::111122223333:role/Stage-Release-RoleEF56"
    assert spec.tracing_enabled and spec.type == "STANDARD"
    assert spec.logging == {
        "level": "ALL",
        "includeExecutionData": True,
        "destinations": [
            {
                "cloudWatchLogsLogGroup": {
                    "logGroupArn": "arn:aws:logs:us-east-2:111122223333:log-group:/aws/vendedlogs/states/release:*"
                }
            }
        ],
    }


def test_overrides_and_object_definitions() -> None:
    template = _template("{}")
    template["Resources"]["Machine"]["Properties"].pop("DefinitionString")
    template["Resources"]["Machine"]["Properties"]["Definition"] = {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Result": {"Ref": "LocksE5F6"}, "End": True}},
    }
    resources = ResourceMap(template, SB, overrides={"LocksE5F6": "locks-sandbox"})
    assert state_machines(template, resources)["Machine"].asl["States"]["P"]["Result"] == "locks-sandbox"


def test_lambda_functions_list_handlers_and_resolved_environment() -> None:
    functions = lambda_functions(_template("{}"), ResourceMap(_template("{}"), SB))
    deploy = functions["FnA1B2C3D4"]
    assert (deploy.name, deploy.handler, deploy.timeout_seconds, deploy.memory_mb) == (
        "deploy-green",
        "tasks.deploy_green.handler",
        120,
        256,
    )
    assert deploy.environment == {
        "LOCK_TABLE": "release-locks",
        "TOPIC": "arn:aws:sns:us-east-2:111122223333:Stage-Release-TopicAB12",
    }
    assert functions["Unnamed9F9F"].name == "Stage-Release-Unnamed9F9F"
    assert functions["Unnamed9F9F"].timeout_seconds == 3  # CloudFormation's default


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Ref": "Nope"}, "no resource with logical id 'Nope'"),
        ({"Fn::GetAtt": ["LocksE5F6", "Bogus"]}, r"Fn::GetAtt \[LocksE5F6, Bogus\]"),
        ({"Fn::ImportValue": "x"}, "does not resolve Fn::ImportValue"),
        (_join("a", {"Fn::GetAtt": ["Nope", "Arn"]}), "'Nope'"),
    ],
)
def test_unresolvable_values_name_the_problem(value: Any, message: str) -> None:
    with pytest.raises(UnresolvableIntrinsic, match=message):
        resolve(value, ResourceMap(_template("{}"), SB), where="Machine.DefinitionString")


def test_unresolvable_definition_names_the_state_machine() -> None:
    with pytest.raises(UnresolvableIntrinsic, match=r"Machine\.Properties\.DefinitionString.*'Ghost'"):
        state_machines(_template(_join('{"a":"', {"Ref": "Ghost"}, '"}')), ResourceMap(_template("{}"), SB))
    with pytest.raises(UnresolvableIntrinsic, match="Machine: resolved definition is not valid JSON"):
        state_machines(_template(_join('{"a":', {"Ref": "LocksE5F6"}, "}")), ResourceMap(_template("{}"), SB))


def test_sub_with_variables_attributes_and_escapes() -> None:
    resources = ResourceMap(_template("{}"), SB)
    value = {"Fn::Sub": ["${Fn.Arn}|${Name}|${!Literal}|${AWS::Region}", {"Name": {"Ref": "LocksE5F6"}}]}
    value["Fn::Sub"][0] = value["Fn::Sub"][0].replace("Fn.Arn", "FnA1B2C3D4.Arn")
    assert (
        resolve(value, resources)
        == "arn:aws:lambda:us-east-2:111122223333:function:deploy-green|release-locks|${Literal}|us-east-2"
    )
    assert resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}, resources) == "b"
    assert json.loads(json.dumps(resolve({"k": [{"Ref": "AWS::Partition"}]}, resources))) == {"k": ["aws"]}


def test_ops_settings_resolve_to_stable_ids() -> None:
    # The operations functions name the cache group's security group, its subnet group and the
    # preview mapping; the sandbox deploys the mapping under the UUID its Ref resolves to.
    template = {
        "Resources": {
            "Sg1": {"Type": "AWS::EC2::SecurityGroup", "Properties": {}},
            "Subnets1": {
                "Type": "AWS::ElastiCache::SubnetGroup",
                "Properties": {"CacheSubnetGroupName": "cache-subnets"},
            },
            "Mapping1": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {}},
        }
    }
    resources = ResourceMap(template, SB)
    group_id = resolve({"Fn::GetAtt": ["Sg1", "GroupId"]}, resources)
    assert group_id == resolve({"Ref": "Sg1"}, resources)
    assert group_id.startswith("sg-") and len(group_id) == 20
    assert resolve({"Ref": "Subnets1"}, resources) == "cache-subnets"
    uuid = resolve({"Ref": "Mapping1"}, resources)
    assert len(uuid) == 36 and uuid == ResourceMap(template, SB).ref("Mapping1")
    assert resources.arn("Mapping1") == f"arn:aws:lambda:us-east-2:111122223333:event-source-mapping:{uuid}"
