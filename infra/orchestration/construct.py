"""Release orchestration of one environment, composed: table, topic, tasks, state machine, rollback rules.

Everything a release needs lives in the main stack next to the service it releases, so
the state machine, its tasks and the alarms they watch reference each other directly and the
local sandbox deploys them from the one synthesized template.

Other parts reuse `table` (the DR drill takes the same per-environment lock) and
`task_function(...)` (a hardened task function with the same bundle, network and settings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from aws_cdk import ArnFormat, CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from contracts import names
from contracts.canary import CANARY_CONNECTIONS_ENDPOINT_VARIABLE, CANARY_KVS_ARN_VARIABLE
from contracts.release import ReleaseDefaults
from infra.bundling import build_bundle, pinned
from infra.config import EnvironmentConfig
from infra.function_construct import HardenedFunction
from infra.monitoring_construct import MonitoringConstruct
from infra.orchestration.alarm_rollback import AlarmRollbackRules
from infra.orchestration.grants import GrantTargets, TaskGrants
from infra.orchestration.state_machine import ReleaseStateMachine
from infra.orchestration.table import ReleaseTable
from infra.orchestration.task_functions import TaskFunctions, label
from state_machines.release import TASK_KEYS

# The task bundle: the tasks, the service code they share (keys, Redis client, event model) and
# the shared contracts (names, the release request model ValidateRequest checks requests with,
# the execution state's sections). Not the CLI: no task imports `orchestrator`.
TASK_PACKAGES = ("tasks", "service", "contracts")
# awscrt: the CloudFront KeyValueStore API (the canary share) signs with SigV4A, which botocore
# does only with the CRT (botocore[crt]); the runtime's boto3 does not ship it.
TASK_REQUIREMENTS = (
    "awscrt",
    "redis",
    "websockets",
    "pydantic",
    "pydantic_core",
    "annotated-types",
    "typing_extensions",
    "typing-inspection",
)


@dataclass(frozen=True)
class ReleaseOrchestrationProps:
    config: EnvironmentConfig
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    # The service Lambdas' security group (admitted by the cache) and the VPC endpoints' group.
    cache_client_security_group: ec2.ISecurityGroup
    endpoint_security_group: ec2.ISecurityGroup
    logs_key: kms.IKey
    messaging_key: kms.IKey
    # Released service functions by catalog key.
    service_functions: Mapping[str, lambda_.IFunction]
    cache_environment: Mapping[str, str]
    cache_auth_secret: secretsmanager.ISecret
    api_keys_secret: secretsmanager.ISecret
    preview_events_queue: sqs.IQueue
    # `wss://<public host>/preview`: through CloudFront, which adds the origin header.
    preview_url: str
    monitoring: MonitoringConstruct
    # The connection canary: its CloudFront KeyValueStore (the share), the canary stage's
    # `@connections` base URL (boto3 endpoint_url) and that stage's `@connections` ARNs the drain may use.
    canary_store_arn: str
    canary_connections_endpoint: str
    canary_connections_arns: tuple[str, ...]


def release_defaults(config: EnvironmentConfig) -> str:
    """RELEASE_DEFAULTS for ValidateRequest: the environment's strategy, checks, judge, routing, approval and minimum."""
    release = config.release
    defaults = ReleaseDefaults.model_validate(
        {
            "strategy": {"steps": [step.model_dump() for step in release.steps]},
            "checks": release.synthetic_checks.model_dump(),
            "judge": release.canary_judge.model_dump(),
            "routing": release.routing,
            "approval": "required" if release.require_approval else "none",
            "min_green_invocations": release.min_green_invocations,
        }
    )
    return defaults.model_dump_json(exclude_none=True)


def alarm_name_of(alarm: cloudwatch.IAlarm) -> str:
    """The literal name set on the alarm resource (the rule pattern and IAM name alarms by name)."""
    name = getattr(cast(Construct, alarm).node.default_child, "alarm_name", None)
    if not isinstance(name, str):
        raise ValueError(
            f"alarm {cast(Construct, alarm).node.path} has no fixed name; release guards need one"
        )
    return name


class ReleaseOrchestration(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: ReleaseOrchestrationProps) -> None:
        super().__init__(scope, construct_id)
        config = props.config
        env = config.environment
        stack = Stack.of(self)
        if config.deploy is None:
            raise ValueError(
                f"config/{env}.json: deploy.artifact_bucket_name is required: DeployGreen reads the service "
                "bundles from that bucket"
            )
        self._props = props

        self.release_table = ReleaseTable(self, "ReleaseTable", environment=env)
        self.table = self.release_table.table
        self.topic = sns.Topic(
            self,
            "ReleaseTopic",
            topic_name=names.release_topic_name(env),
            display_name=f"{env} realtime analytics releases",
            master_key=self.release_table.key,
            enforce_ssl=True,
        )
        if config.operations_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.operations_email))

        guard_alarms = list(props.monitoring.release_guard_alarms)
        self.guard_alarm_names = sorted(alarm_name_of(alarm) for alarm in guard_alarms)
        self.health_alarm_name = alarm_name_of(props.monitoring.release_health_alarm)
        # CheckAlarms fails a release when an expected alarm is missing: what it expects
        # (contracts.names) must be exactly what monitoring created.
        self.release_alarm_names = list(names.release_alarm_names(env, props.service_functions))
        built = [*self.guard_alarm_names, self.health_alarm_name]
        if sorted(built) != sorted(self.release_alarm_names):
            raise ValueError(
                f"release gate alarms {sorted(built)} differ from contracts.names.release_alarm_names "
                f"{sorted(self.release_alarm_names)}"
            )

        service_names = [names.function_name(env, key) for key in props.service_functions]
        self.shared_environment: dict[str, str] = {
            "ENVIRONMENT": env,
            "SERVICE_FUNCTION_NAMES": json.dumps(service_names),
            "RELEASE_TABLE_NAME": names.release_table_name(env),
            "RELEASE_TOPIC_ARN": self.topic.topic_arn,
            "RELEASE_DEFAULTS": release_defaults(config),
            "POWERTOOLS_SERVICE_NAME": "release-orchestrator",
            "POWERTOOLS_METRICS_NAMESPACE": names.METRICS_NAMESPACE,
            "LOG_LEVEL": config.log_level,
        }
        bundle = build_bundle(
            TASK_PACKAGES,
            pinned(TASK_REQUIREMENTS),
            python_version=config.lambdas.python_runtime.removeprefix("python"),
        )
        self.code = lambda_.Code.from_asset(str(bundle), exclude=[".complete"])
        self.grants = TaskGrants(
            stack,
            GrantTargets(
                table=self.release_table,
                topic=self.topic,
                topic_key=self.release_table.key,
                service_functions=props.service_functions,
                artifact_bucket_name=config.deploy.artifact_bucket_name,
                execution_arn_pattern=stack.format_arn(
                    service="states",
                    resource="execution",
                    resource_name=f"{names.release_state_machine_name(env)}:*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                ),
                cache_auth_secret=props.cache_auth_secret,
                api_keys_secret=props.api_keys_secret,
                preview_events_queue=props.preview_events_queue,
                messaging_key=props.messaging_key,
                canary_store_arn=props.canary_store_arn,
                canary_connections_arns=props.canary_connections_arns,
                drain_function_arn=stack.format_arn(
                    service="lambda",
                    resource="function",
                    resource_name=names.task_function_name(env, "drain_canary"),
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                ),
            ),
        )
        self.tasks = TaskFunctions(
            self,
            "Tasks",
            config=config,
            code=self.code,
            vpc=props.vpc,
            subnets=props.subnets,
            cache_security_group=props.cache_client_security_group,
            endpoint_security_group=props.endpoint_security_group,
            logs_key=props.logs_key,
            grants=self.grants,
            shared_environment=self.shared_environment,
            cache_environment=props.cache_environment,
            permission_environment={
                "alarms_read": {"RELEASE_ALARM_NAMES": json.dumps(self.release_alarm_names)},
                "synthetic": {
                    "PREVIEW_WS_URL": props.preview_url,
                    "API_KEYS_SECRET_ARN": props.api_keys_secret.secret_arn,
                    "PREVIEW_EVENTS_QUEUE_URL": props.preview_events_queue.queue_url,
                },
                "canary_store": {CANARY_KVS_ARN_VARIABLE: props.canary_store_arn},
                "canary_drain": {CANARY_CONNECTIONS_ENDPOINT_VARIABLE: props.canary_connections_endpoint},
            },
        )
        self.release = ReleaseStateMachine(
            self,
            "Release",
            config=config,
            table=self.release_table,
            functions={key: self.tasks.functions[key] for key in TASK_KEYS},
            logs_key=props.logs_key,
        )
        self.state_machine = self.release.state_machine
        self.rollback_rules = AlarmRollbackRules(
            self,
            "AlarmRollback",
            environment=env,
            alarm_names=[*self.guard_alarm_names, self.health_alarm_name],
            state_machine=self.state_machine,
            function=self.tasks.functions["alarm_rollback"],
            dlq_retention=Duration.days(config.messaging.dlq_retention_days),
        )
        props.monitoring.monitor_state_machine(self.state_machine, name="release")

        CfnOutput(
            self,
            "ReleaseStateMachineArn",
            value=self.state_machine.state_machine_arn,
            description="Start a release: orchestrator release start (StartExecution on this ARN)",
        )
        CfnOutput(
            self,
            "ReleaseTableName",
            value=self.table.table_name,
            description="Release locks, records and audit trail",
        )

    def task_function(
        self,
        construct_id: str,
        *,
        function_name: str,
        handler: str,
        description: str,
        timeout_seconds: int,
        memory_mb: int = 256,
        environment: Mapping[str, str] | None = None,
        needs_cache: bool = False,
        reserved_concurrency: int = 1,
        scope: Construct | None = None,
    ) -> HardenedFunction:
        """A hardened function from the task bundle, in the VPC like the release tasks.

        It carries the release tasks' shared settings (table, topic, environment) plus
        `environment`; callers add their own resource-scoped statements to `.role`.
        """
        props = self._props
        variables = {**self.shared_environment, **(environment or {})}
        if needs_cache:
            variables.update(props.cache_environment)
        hardened = HardenedFunction(
            scope or self,
            construct_id,
            config=props.config,
            function_name=function_name,
            handler=handler,
            description=description[:256],
            code=self.code,
            memory_mb=memory_mb,
            timeout_seconds=timeout_seconds,
            reserved_concurrency=reserved_concurrency,
            environment=variables,
            vpc=props.vpc,
            subnets=props.subnets,
            security_group=props.cache_client_security_group if needs_cache else self.tasks.security_group,
            logs_key=props.logs_key,
        )
        if needs_cache:
            props.cache_auth_secret.grant_read(hardened.role)
        return hardened

    @property
    def task_labels(self) -> Sequence[str]:
        """Construct ids of the task functions under `Tasks/` (for acknowledgments and tests)."""
        return [label(key) for key in self.tasks.functions]
