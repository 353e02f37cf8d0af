"""EventBridge Scheduler schedules of the operations tasks, from `schedules` in the configuration.

One schedule group per environment; one role that the scheduler assumes, allowed to invoke
exactly the scheduled targets (the backup and cost-check functions, the DR drill state
machine) and to send to the schedules' dead-letter queue. Flexible time windows are off so a
run happens at its configured time (backups before the nightly low, drills announced in
advance); a target that cannot be reached is retried, then lands in the DLQ, which has an alarm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig

RETRY_ATTEMPTS = 3
MAX_EVENT_AGE = Duration.hours(1)


@dataclass(frozen=True)
class ScheduleTargets:
    backup: lambda_.IFunction
    cost_check: lambda_.IFunction
    dr_drill: sfn.IStateMachine


def cron_options(expression: str) -> scheduler.ScheduleExpression:
    """`cron(min hour dom month dow year)` from the configuration, in UTC."""
    return scheduler.ScheduleExpression.expression(expression, TimeZone.ETC_UTC)


class OperationsSchedules(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        schedule_targets: ScheduleTargets,
        messaging_key: kms.IKey,
        operations_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        env = config.environment
        self.group = scheduler.ScheduleGroup(
            self, "Group", schedule_group_name=names.schedule_group_name(env)
        )
        self.dead_letter_queue = sqs.Queue(
            self,
            "Dlq",
            queue_name=names.schedule_dlq_name(env),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=messaging_key,
            data_key_reuse=Duration.minutes(5),
            retention_period=Duration.days(config.messaging.dlq_retention_days),
            enforce_ssl=True,
        )
        self.role = iam.Role(
            self,
            "Role",
            role_name=f"{names.schedule_group_name(env)}-scheduler",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                # Only this account's schedules of this group may assume it (confused deputy).
                conditions={
                    "StringEquals": {"aws:SourceAccount": config.account},
                    "ArnLike": {
                        "aws:SourceArn": Stack.of(self).format_arn(
                            service="scheduler",
                            resource="schedule",
                            resource_name=f"{names.schedule_group_name(env)}/*",
                        )
                    },
                },
            ),
            description=f"EventBridge Scheduler: {env} operations schedules (backup, cost check, DR drill)",
        )
        # The scheduler sends failed invocations to the KMS-encrypted DLQ.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptDeadLetters",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[messaging_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"sqs.{config.region}.amazonaws.com"}},
            )
        )
        # The same role, dead-letter queue and retry policy for every target (jsii props as keywords).
        common: dict[str, Any] = {
            "role": self.role,
            "dead_letter_queue": self.dead_letter_queue,
            "retry_attempts": RETRY_ATTEMPTS,
            "max_event_age": MAX_EVENT_AGE,
        }
        plan = {
            "backup": (
                config.schedules.backup,
                targets.LambdaInvoke(
                    schedule_targets.backup,
                    input=scheduler.ScheduleTargetInput.from_object({"source": "schedule"}),
                    **common,
                ),
                "Daily manual snapshot, export and manifest",
            ),
            "cost-check": (
                config.schedules.cost_check,
                targets.LambdaInvoke(
                    schedule_targets.cost_check,
                    input=scheduler.ScheduleTargetInput.from_object({"source": "schedule"}),
                    **common,
                ),
                "Daily cost check against the budget",
            ),
            "dr-drill": (
                config.schedules.dr_drill,
                targets.StepFunctionsStartExecution(
                    schedule_targets.dr_drill,
                    input=scheduler.ScheduleTargetInput.from_object(
                        {"type": "snapshot-restore", "requested_by": "schedule"}
                    ),
                    **common,
                ),
                "DR drill: restore the newest backup into a temporary group and verify it",
            ),
        }
        self.schedules: dict[str, scheduler.Schedule] = {}
        for key, (expression, target, description) in plan.items():
            self.schedules[key] = scheduler.Schedule(
                self,
                "".join(part.capitalize() for part in key.split("-")),
                schedule_name=names.schedule_name(env, key),
                schedule_group=self.group,
                schedule=cron_options(expression),
                target=target,
                description=description,
                time_window=scheduler.TimeWindow.off(),
                enabled=True,
            )
        alarm = cloudwatch.Alarm(
            self,
            "DlqAlarm",
            alarm_name=f"{names.schedule_group_name(env)}-schedule-dlq",
            alarm_description="A scheduled operations run (backup, cost check, DR drill) could not be started; "
            "see runbooks/incident-triage.md",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(operations_topic))
