"""A Standard state machine as every workflow of the stage is made: traced, logged, allowed the lock.

The release and both drills are Standard workflows with X-Ray tracing and execution logs in a
retained, KMS-encrypted log group; each takes and releases the release lock, an item of the
release table, so its role may use the table's key through DynamoDB (and only through it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.orchestration.grants import TABLE_KEY_WRITE_ACTIONS
from infra.retention import retention


@dataclass(frozen=True)
class LoggedStateMachine:
    log_group: logs.LogGroup
    state_machine: sfn.StateMachine


def logged_state_machine(
    scope: Construct,
    *,
    name: str,
    comment: str,
    definition: Callable[[Construct], sfn.IChainable],
    log_group_name: str,
    log_retention_days: int,
    logs_key: kms.IKey,
    log_level: sfn.LogLevel,
    include_execution_data: bool,
    table_key: kms.IKey,
    region: str,
) -> LoggedStateMachine:
    """The log group (`Logs`), the definition's states (built under `Definition`, so their construct ids
    cannot collide with anything else in `scope`) and the state machine (`StateMachine`) in `scope`."""
    log_group = logs.LogGroup(
        scope,
        "Logs",
        log_group_name=log_group_name,
        retention=retention(log_retention_days),
        encryption_key=logs_key,
        removal_policy=RemovalPolicy.RETAIN,
    )
    chain = definition(Construct(scope, "Definition"))
    state_machine = sfn.StateMachine(
        scope,
        "StateMachine",
        state_machine_name=name,
        state_machine_type=sfn.StateMachineType.STANDARD,
        comment=comment,
        definition_body=sfn.DefinitionBody.from_chainable(chain),
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=log_group, level=log_level, include_execution_data=include_execution_data
        ),
        removal_policy=RemovalPolicy.RETAIN,
    )
    state_machine.add_to_role_policy(
        iam.PolicyStatement(
            sid="UseReleaseTableKey",
            actions=list(TABLE_KEY_WRITE_ACTIONS),
            resources=[table_key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}},
        )
    )
    return LoggedStateMachine(log_group=log_group, state_machine=state_machine)
