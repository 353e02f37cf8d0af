"""The release state machine resource: the definition from `state_machines/release.py`.

Standard workflow (executions up to a year, exactly-once steps, history for the console
graph), X-Ray tracing, execution logs into a KMS-encrypted log group at the configured level.
Execution data (inputs and outputs) is left out of the logs: it would copy the approval task
token into a log group; the execution history keeps it behind `states:GetExecutionHistory`.
The role CDK derives from the definition invokes exactly the task functions and writes the
lock item of exactly this table; the table's key is added here for the lock's SDK calls.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig
from infra.orchestration.grants import TABLE_KEY_WRITE_ACTIONS
from infra.orchestration.table import ReleaseTable
from infra.retention import retention
from state_machines.release import ReleaseProps, release_definition

LOG_LEVELS = {
    "ALL": sfn.LogLevel.ALL,
    "ERROR": sfn.LogLevel.ERROR,
    "FATAL": sfn.LogLevel.FATAL,
    "OFF": sfn.LogLevel.OFF,
}


class ReleaseStateMachine(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        table: ReleaseTable,
        functions: Mapping[str, lambda_.IFunction],
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        env = config.environment
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=names.release_state_machine_log_group_name(env),
            retention=retention(config.log_retention_days),
            encryption_key=logs_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # States are created inside a scope of their own so their construct ids cannot collide.
        definition_scope = Construct(self, "Definition")
        definition = release_definition(
            definition_scope, ReleaseProps(environment=env, table=table.table, functions=functions)
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=names.release_state_machine_name(env),
            state_machine_type=sfn.StateMachineType.STANDARD,
            comment=f"Release of the realtime analytics service ({env}): validate, lock, deploy green, warm, "
            "check, shift traffic, finalize or roll back",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=LOG_LEVELS[config.release.state_machine_log_level],
                include_execution_data=False,
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="UseReleaseTableKey",
                actions=list(TABLE_KEY_WRITE_ACTIONS),
                resources=[table.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{config.region}.amazonaws.com"}},
            )
        )
