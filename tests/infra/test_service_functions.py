"""Template assertions: the released service functions, their aliases, ESMs and rotation."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from contracts import names
from infra.config import EnvironmentConfig
from infra.function_construct import powertools_layer_arn
from service.catalog import RELEASED_FUNCTIONS, ROTATION_FUNCTION

REQUIRED_ENV = {
    "REDIS_HOST", "REDIS_PORT", "REDIS_TLS", "REDIS_AUTH_SECRET_ARN", "API_KEYS_SECRET_ARN",
    "EVENTS_QUEUE_URL", "PREVIEW_EVENTS_QUEUE_URL", "ALERTS_TOPIC_ARN", "CACHE_SCHEMA_VERSION",
    "SERVICE_VERSION", "FAULT_ERROR_RATE", "FAULT_DELAY_MS", "FAULT_DROP_RATE",
    "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL",
}  # fmt: skip


def _functions(template: Template) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        f["Properties"]["FunctionName"]: (logical, f["Properties"])
        for logical, f in template.find_resources("AWS::Lambda::Function").items()
        if isinstance(f["Properties"].get("FunctionName"), str)
    }


def test_one_function_per_catalog_entry(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    config = configs[env]
    functions = _functions(template)
    subnets = {
        logical
        for logical, s in template.find_resources("AWS::EC2::Subnet").items()
        if {"Key": "aws-cdk:subnet-name", "Value": "service"} in s["Properties"]["Tags"]
    }
    for entry in (*RELEASED_FUNCTIONS, ROTATION_FUNCTION):
        name = (
            names.rotation_function_name(env)
            if entry is ROTATION_FUNCTION
            else names.function_name(env, entry.key)
        )
        _, props = functions[name]
        assert props["Handler"] == entry.handler
        assert props["Architectures"] == ["arm64"]
        assert props["Runtime"] == config.lambdas.python_runtime
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert "Ref" in props["LoggingConfig"]["LogGroup"]
        assert props["Layers"] == [
            powertools_layer_arn(
                config.region, config.lambdas.python_runtime, config.lambdas.powertools_layer_version
            )
        ]
        assert {ref["Ref"] for ref in props["VpcConfig"]["SubnetIds"]} == subnets
        assert len(props["VpcConfig"]["SecurityGroupIds"]) == 1
        assert props["ReservedConcurrentExecutions"] >= 1
        variables = props["Environment"]["Variables"]
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == names.METRICS_NAMESPACE
        if entry is ROTATION_FUNCTION:
            continue  # not released: gets the secret id in its event, needs no service variables
        assert REQUIRED_ENV <= set(variables), REQUIRED_ENV - set(variables)
        assert variables["REDIS_TLS"] == "true"
        assert variables["REDIS_PORT"] == str(config.cache.port)
        assert variables["FAULT_ERROR_RATE"] == "0"


def test_powertools_layer_arn_format() -> None:
    assert powertools_layer_arn("eu-west-1", "python3.12", 27) == (
        "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:27"
    )


def test_reserved_concurrency_from_config(
    production_template: Template, configs: dict[str, EnvironmentConfig]
) -> None:
    config = configs["production"]
    functions = _functions(production_template)
    for key, settings in config.lambdas.functions.items():
        _, props = functions[names.function_name("production", key)]
        assert props["ReservedConcurrentExecutions"] == settings.reserved_concurrency
        assert props["MemorySize"] == settings.memory_mb
        assert props["Timeout"] == settings.timeout_seconds


def test_aliases_pin_the_bootstrap_version(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    """`cdk deploy` never moves aliases: both point at a version whose id carries the config's bootstrap number."""
    env, template = env_template
    bootstrap = configs[env].lambdas.bootstrap_version
    versions = template.find_resources("AWS::Lambda::Version")
    assert len(versions) == len(RELEASED_FUNCTIONS)
    for logical, version in versions.items():
        assert f"BootstrapV{bootstrap}" in logical
        assert version["DeletionPolicy"] == "Retain"
    aliases = template.find_resources("AWS::Lambda::Alias")
    alias_names = sorted(a["Properties"]["Name"] for a in aliases.values())
    assert alias_names == sorted([names.LIVE_ALIAS, names.GREEN_ALIAS] * len(RELEASED_FUNCTIONS))
    for alias in aliases.values():
        target = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"]
        assert target[0] in versions and target[1] == "Version"
        assert "RoutingConfig" not in alias["Properties"]


def test_event_source_mappings_target_aliases(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    mappings = template.find_resources("AWS::Lambda::EventSourceMapping")
    queues = {
        q["Properties"]["QueueName"]: logical
        for logical, q in template.find_resources("AWS::SQS::Queue").items()
    }
    by_alias = {}
    for mapping in mappings.values():
        props = mapping["Properties"]
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert props["BatchSize"] == configs[env].messaging.batch_size
        alias_suffix = props["FunctionName"]["Fn::Join"][1][1]
        by_alias[alias_suffix] = props["EventSourceArn"]["Fn::GetAtt"][0]
    assert by_alias == {
        ":live": queues[names.queue_name(env, "events")],
        ":green": queues[names.queue_name(env, "preview-events")],
    }


def test_provisioned_concurrency_only_in_production(
    staging_template: Template, production_template: Template, configs: dict[str, EnvironmentConfig]
) -> None:
    staging_template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    pc = configs["production"].lambdas.provisioned_concurrency
    assert pc is not None
    hot = [
        a
        for a in production_template.find_resources("AWS::Lambda::Alias").values()
        if "ProvisionedConcurrencyConfig" in a["Properties"]
    ]
    assert len(hot) == len(pc.functions)
    for alias in hot:
        assert alias["Properties"]["Name"] == names.LIVE_ALIAS
        assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {
            "ProvisionedConcurrentExecutions": pc.min_capacity
        }
    targets = production_template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    assert len(targets) == len(pc.functions)
    for target in targets.values():
        props = target["Properties"]
        assert props["ScalableDimension"] == "lambda:function:ProvisionedConcurrency"
        assert (props["MinCapacity"], props["MaxCapacity"]) == (pc.min_capacity, pc.max_capacity)
    production_template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"
                    },
                    "TargetValue": pc.target_utilization,
                }
            ),
        },
    )


def test_api_key_secret_rotates(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    secrets = template.find_resources("AWS::SecretsManager::Secret")
    api_keys = next(
        k for k, s in secrets.items() if s["Properties"]["Name"] == names.secret_name(env, "api-keys")
    )
    assert secrets[api_keys]["Properties"]["GenerateSecretString"]["GenerateStringKey"] == "api_key"
    assert secrets[api_keys]["Properties"]["KmsKeyId"]["Fn::GetAtt"][0].startswith("KeysSecrets")
    rotation_fn, _ = _functions(template)[names.rotation_function_name(env)]
    template.has_resource_properties(
        "AWS::SecretsManager::RotationSchedule",
        {
            "SecretId": {"Ref": api_keys},
            "RotationLambdaARN": {"Fn::GetAtt": [rotation_fn, "Arn"]},
            "RotationRules": {
                "ScheduleExpression": f"rate({configs[env].secrets.api_key_rotation_days} days)"
            },
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {"Principal": "secretsmanager.amazonaws.com", "SourceAccount": configs[env].account},
    )


@pytest.mark.parametrize("env", names.ENVIRONMENTS)
def test_stack_names_and_tags(env: str, synth_assembly: Any, configs: dict[str, EnvironmentConfig]) -> None:
    nested = synth_assembly.get_nested_assembly(f"assembly-{names.stage_id(env)}")
    stack = next(s for s in nested.stacks if s.stack_name == names.stack_name(env))
    assert (
        stack.environment.account == configs[env].account and stack.environment.region == configs[env].region
    )
    vpc = next(r for r in stack.template["Resources"].values() if r["Type"] == "AWS::EC2::VPC")
    tags = {t["Key"]: t["Value"] for t in vpc["Properties"]["Tags"]}
    assert tags["Environment"] == env and tags["Project"] == names.PROJECT
