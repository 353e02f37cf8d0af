"""The DR drill state machine resource: the definition from `state_machines/dr_drill.py`.

Standard workflow (a drill waits for a restore for up to ~2 h; Express stops at 5 minutes),
X-Ray tracing, execution logs in a KMS-encrypted log group. Execution data is logged: a drill's
state holds snapshot names, group ids and timings, no secrets (the AUTH token is read by the
task from Secrets Manager, never passed through the state).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig
from infra.retention import retention
from state_machines.dr_drill import DrDrillProps, dr_drill_definition
from state_machines.event_path_drill import EventPathDrillProps, event_path_drill_definition

# What DynamoDB asks KMS for on the state machine's behalf when it writes the lock item.
TABLE_KEY_WRITE_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey")


class DrDrillStateMachine(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        table: dynamodb.ITable,
        table_key: kms.IKey,
        drill_function: lambda_.IFunction,
        verify_function: lambda_.IFunction,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        env = config.environment
        name = names.dr_drill_state_machine_name(env)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=names.state_machine_log_group_name(name),
            retention=retention(config.log_retention_days),
            encryption_key=logs_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        definition_scope = Construct(self, "Definition")
        definition = dr_drill_definition(
            definition_scope,
            DrDrillProps(
                environment=env, table=table, drill_function=drill_function, verify_function=verify_function
            ),
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            comment=f"DR drill ({env}): restore a backup into a temporary group, verify it against its manifest, "
            "measure RTO/RPO, always delete the temporary group; holds the release lock",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="UseReleaseTableKey",
                actions=list(TABLE_KEY_WRITE_ACTIONS),
                resources=[table_key.key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"dynamodb.{Stack.of(self).region}.amazonaws.com"}
                },
            )
        )


class EventPathDrillStateMachine(Construct):
    """The event-path drill (`state_machines/event_path_drill.py`): Standard, traced, logged like the DR drill.

    Execution data is logged: the state holds queue counts, event ids and timings, no secrets.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        table: dynamodb.ITable,
        table_key: kms.IKey,
        drill_function: lambda_.IFunction,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        env = config.environment
        name = names.event_path_drill_state_machine_name(env)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=names.state_machine_log_group_name(name),
            retention=retention(config.log_retention_days),
            encryption_key=logs_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        definition = event_path_drill_definition(
            Construct(self, "Definition"),
            EventPathDrillProps(environment=env, table=table, drill_function=drill_function),
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            comment=f"Event-path drill ({env}): marked events forced into the preview DLQ, redriven, delivery "
            "confirmed; the preview mapping is resumed on every path; holds the release lock",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="UseReleaseTableKey",
                actions=list(TABLE_KEY_WRITE_ACTIONS),
                resources=[table_key.key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"dynamodb.{Stack.of(self).region}.amazonaws.com"}
                },
            )
        )
