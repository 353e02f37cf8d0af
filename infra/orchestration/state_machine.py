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

from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig
from infra.orchestration.logged_state_machine import logged_state_machine
from infra.orchestration.table import ReleaseTable
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
        made = logged_state_machine(
            self,
            name=names.release_state_machine_name(env),
            comment=f"Release of the realtime analytics service ({env}): validate, lock, deploy green, warm, "
            "check, shift traffic, finalize or roll back",
            definition=lambda definition_scope: release_definition(
                definition_scope, ReleaseProps(environment=env, table=table.table, functions=functions)
            ),
            log_group_name=names.release_state_machine_log_group_name(env),
            log_retention_days=config.log_retention_days,
            logs_key=logs_key,
            log_level=LOG_LEVELS[config.release.state_machine_log_level],
            include_execution_data=False,
            table_key=table.key,
            region=config.region,
        )
        self.log_group = made.log_group
        self.state_machine = made.state_machine
