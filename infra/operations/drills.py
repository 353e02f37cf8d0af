"""The DR drill state machine resource: the definition from `state_machines/dr_drill.py`.

Standard workflow (a drill waits for a restore for up to ~2 h; Express stops at 5 minutes),
X-Ray tracing, execution logs in a KMS-encrypted log group. Execution data is logged: a drill's
state holds snapshot names, group ids and timings, no secrets (the AUTH token is read by the
task from Secrets Manager, never passed through the state).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig
from infra.orchestration.logged_state_machine import logged_state_machine
from state_machines.dr_drill import DrDrillProps, dr_drill_definition
from state_machines.event_path_drill import EventPathDrillProps, event_path_drill_definition


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
        made = logged_state_machine(
            self,
            name=name,
            comment=f"DR drill ({env}): restore a backup into a temporary group, verify it against its manifest, "
            "measure RTO/RPO, always delete the temporary group; holds the release lock",
            definition=lambda definition_scope: dr_drill_definition(
                definition_scope,
                DrDrillProps(
                    environment=env,
                    table=table,
                    drill_function=drill_function,
                    verify_function=verify_function,
                ),
            ),
            log_group_name=names.state_machine_log_group_name(name),
            log_retention_days=config.log_retention_days,
            logs_key=logs_key,
            log_level=sfn.LogLevel.ALL,
            include_execution_data=True,
            table_key=table_key,
            region=Stack.of(self).region,
        )
        self.log_group = made.log_group
        self.state_machine = made.state_machine


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
        made = logged_state_machine(
            self,
            name=name,
            comment=f"Event-path drill ({env}): marked events forced into the preview DLQ, redriven, delivery "
            "confirmed; the preview mapping is resumed on every path; holds the release lock",
            definition=lambda definition_scope: event_path_drill_definition(
                definition_scope,
                EventPathDrillProps(environment=env, table=table, drill_function=drill_function),
            ),
            log_group_name=names.state_machine_log_group_name(name),
            log_retention_days=config.log_retention_days,
            logs_key=logs_key,
            log_level=sfn.LogLevel.ALL,
            include_execution_data=True,
            table_key=table_key,
            region=Stack.of(self).region,
        )
        self.log_group = made.log_group
        self.state_machine = made.state_machine
