"""The release tasks as Lambda functions: one hardened function and role per `tasks/catalog.py` entry.

Every task runs in the VPC's private subnets (egress through NAT and the VPC endpoints). Tasks
that reach Redis (`needs_vpc`: warm-up and clean-up) share the service's Lambda security
group, which the cache admits; the others get a security group with HTTPS egress only, so a
task that has no business with the cache cannot reach it. Each role starts with logging,
tracing and ENI management (infra/function_construct.py) and receives exactly the statements
its catalog permissions name (infra/orchestration/grants.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from contracts.names import task_function_name
from infra.config import EnvironmentConfig
from infra.function_construct import HardenedFunction
from infra.orchestration.grants import TaskGrants
from tasks.catalog import TASKS, Permission, TaskFunction

# Releases are serialized by the lock: a task runs once at a time, plus an overlapping retry.
DEFAULT_RESERVED_CONCURRENCY = 2
# Several guard alarms fire together; one rollback at a time, the others find the lock gone.
RESERVED_CONCURRENCY = {"alarm_rollback": 1}
# Per-task settings of the code itself (time budgets below the Lambda timeout).
TASK_ENVIRONMENT: Mapping[str, Mapping[str, str]] = {
    "warm_cache": {"WARM_TIME_BUDGET_SECONDS": "240"},
    "synthetic_checks": {"SYNTHETIC_DEADLINE_SECONDS": "240"},
}


def label(key: str) -> str:
    return "".join(part.capitalize() for part in key.split("_"))


class TaskFunctions(Construct):
    """Creates the task functions; `functions` maps catalog key -> function."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        code: lambda_.Code,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        cache_security_group: ec2.ISecurityGroup,
        endpoint_security_group: ec2.ISecurityGroup,
        logs_key: kms.IKey,
        grants: TaskGrants,
        shared_environment: Mapping[str, str],
        cache_environment: Mapping[str, str],
        # Variables a task gets with a catalog permission (alarm names with alarms_read, the
        # preview URL with synthetic, the canary store ARN with canary_store ...).
        permission_environment: Mapping[Permission, Mapping[str, str]],
        tasks: tuple[TaskFunction, ...] = TASKS,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Release tasks without cache access: HTTPS out only (AWS APIs, the preview stage)",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(),
            ec2.Port.tcp(443),
            "HTTPS to AWS APIs (endpoints or NAT) and the preview stage",
        )
        endpoint_security_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(443), "HTTPS from the release tasks"
        )
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        self.hardened: dict[str, HardenedFunction] = {}
        for task in tasks:
            environment = {**shared_environment, **TASK_ENVIRONMENT.get(task.key, {})}
            if "redis" in task.permissions:
                environment.update(cache_environment)
            for permission in task.permissions:
                environment.update(permission_environment.get(permission, {}))
            hardened = HardenedFunction(
                self,
                label(task.key),
                config=config,
                function_name=task_function_name(config.environment, task.key),
                handler=task.handler,
                description=task.description[:256],
                code=code,
                memory_mb=task.memory_mb,
                timeout_seconds=task.timeout_seconds,
                reserved_concurrency=RESERVED_CONCURRENCY.get(task.key, DEFAULT_RESERVED_CONCURRENCY),
                environment=environment,
                vpc=vpc,
                subnets=subnets,
                security_group=cache_security_group
                if task.needs_vpc and "redis" in task.permissions
                else self.security_group,
                logs_key=logs_key,
            )
            grants.grant(hardened.role, task.permissions)
            self.functions[task.key] = hardened.function
            self.roles[task.key] = hardened.role
            self.hardened[task.key] = hardened
