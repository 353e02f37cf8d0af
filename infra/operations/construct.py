"""Operations of one environment, composed: backup bucket, task functions, DR drill state
machine, schedules and budgets.

The DR drill takes the release table's lock item (`lock#<env>`), so a drill and a release
never overlap; the table and its key come from the release orchestration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import CfnOutput
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.monitoring_construct import MonitoringConstruct
from infra.operations.backup_bucket import BackupBucket
from infra.operations.budgets import CostBudgets
from infra.operations.drills import DrDrillStateMachine, EventPathDrillStateMachine
from infra.operations.functions import EventPathTargets, OpsFunctions, OpsFunctionsProps
from infra.operations.schedules import OperationsSchedules, ScheduleTargets


@dataclass(frozen=True)
class OperationsProps:
    config: EnvironmentConfig
    code: lambda_.Code
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    cache_client_security_group: ec2.ISecurityGroup
    endpoint_security_group: ec2.ISecurityGroup
    logs_key: kms.IKey
    cache_key: kms.IKey
    messaging_key: kms.IKey
    cache_environment: Mapping[str, str]
    cache_auth_secret: secretsmanager.ISecret
    cache_subnet_group_name: str
    cache_security_group: ec2.ISecurityGroup
    operations_topic: sns.ITopic
    # The release lock table and its key (infra/orchestration/table.py).
    table: dynamodb.ITable
    table_key: kms.IKey
    monitoring: MonitoringConstruct
    # preview-events, its DLQ and its mapping to fanout:green (the event-path drill's subject).
    event_path: EventPathTargets


class Operations(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: OperationsProps) -> None:
        super().__init__(scope, construct_id)
        config = props.config
        self.backups = BackupBucket(self, "Backups", config=config)
        self.tasks = OpsFunctions(
            self,
            "Tasks",
            props=OpsFunctionsProps(
                config=config,
                code=props.code,
                vpc=props.vpc,
                subnets=props.subnets,
                cache_client_security_group=props.cache_client_security_group,
                endpoint_security_group=props.endpoint_security_group,
                logs_key=props.logs_key,
                cache_key=props.cache_key,
                messaging_key=props.messaging_key,
                cache_environment=props.cache_environment,
                cache_auth_secret=props.cache_auth_secret,
                cache_subnet_group_name=props.cache_subnet_group_name,
                cache_security_group=props.cache_security_group,
                backups=self.backups,
                operations_topic=props.operations_topic,
                table=props.table,
                table_key=props.table_key,
                event_path=props.event_path,
            ),
        )
        self.dr_drill = DrDrillStateMachine(
            self,
            "DrDrill",
            config=config,
            table=props.table,
            table_key=props.table_key,
            drill_function=self.tasks.functions["dr-drill"],
            verify_function=self.tasks.functions["dr-verify"],
            logs_key=props.logs_key,
        )
        props.monitoring.monitor_state_machine(self.dr_drill.state_machine, name="dr-drill")
        self.event_path_drill = EventPathDrillStateMachine(
            self,
            "EventPathDrill",
            config=config,
            table=props.table,
            table_key=props.table_key,
            drill_function=self.tasks.functions["event-path-drill"],
            logs_key=props.logs_key,
        )
        props.monitoring.monitor_state_machine(self.event_path_drill.state_machine, name="event-path-drill")
        self.schedules = OperationsSchedules(
            self,
            "Schedules",
            config=config,
            schedule_targets=ScheduleTargets(
                backup=self.tasks.functions["backup"],
                cost_check=self.tasks.functions["cost-check"],
                dr_drill=self.dr_drill.state_machine,
            ),
            messaging_key=props.messaging_key,
            operations_topic=props.operations_topic,
        )
        self.budgets = CostBudgets(
            self,
            "Budgets",
            config=config,
            operations_topic=props.operations_topic,
            messaging_key=props.messaging_key,
        )
        CfnOutput(
            self,
            "DrDrillStateMachineArn",
            value=self.dr_drill.state_machine.state_machine_arn,
            description="Start a DR drill: orchestrator drill start (StartExecution on this ARN)",
        )
        CfnOutput(
            self,
            "EventPathDrillStateMachineArn",
            value=self.event_path_drill.state_machine.state_machine_arn,
            description="Start an event-path drill: orchestrator drill start --type event-path",
        )
        CfnOutput(
            self,
            "BackupBucketName",
            value=self.backups.bucket.bucket_name,
            description="Exported snapshots and their manifests",
        )
