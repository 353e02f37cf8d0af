"""EventBridge rules that start the alarm rollback (tasks/alarm_rollback.py).

- A release-guard alarm or the composite `<env>-release-health` changes to ALARM: blue takes
  all traffic back at once and the running release execution is stopped with the alarm as cause.
- A release execution ends ABORTED or TIMED_OUT (stopped by hand, or past its timeout) while it
  may hold the lock: the same task restores blue and releases the lock, so no stopped execution
  leaves traffic split.

EventBridge invokes the function asynchronously, retries failed deliveries with back-off for
a bounded time, and puts what it could not deliver into an encrypted dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts import names
from infra.scanner import checkov_skip

ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"
# A rollback is worth retrying for a while, not for a day: after this, the DLQ and its alarm take over.
MAX_EVENT_AGE = Duration.minutes(30)
RETRY_ATTEMPTS = 8


class AlarmRollbackRules(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: str,
        alarm_names: Sequence[str],
        state_machine: sfn.IStateMachine,
        function: lambda_.IFunction,
        dlq_retention: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        # SQS-managed encryption: EventBridge can deliver to it without a key policy for events.amazonaws.com.
        self.dead_letter_queue = sqs.Queue(
            self,
            "Dlq",
            queue_name=names.alarm_rollback_dlq_name(environment),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=dlq_retention,
        )
        checkov_skip(
            self.dead_letter_queue,
            "CKV_AWS_27",
            "encrypted at rest with SQS-managed SSE (SqsManagedSseEnabled); checkov only recognizes a KMS key, "
            "and a customer key would need a key policy for events.amazonaws.com for no added protection here",
        )
        target = targets.LambdaFunction(
            function,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
        )
        self.alarm_rule = events.Rule(
            self,
            "AlarmRule",
            rule_name=names.alarm_rollback_rule_name(environment),
            description="A release-guard alarm (or the release-health composite) went to ALARM: roll back now",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=[ALARM_STATE_CHANGE],
                detail={"alarmName": sorted(alarm_names), "state": {"value": ["ALARM"]}},
            ),
            targets=[target],
        )
        self.execution_rule = events.Rule(
            self,
            "ExecutionEndedRule",
            rule_name=names.execution_ended_rule_name(environment),
            description="A release execution was aborted or timed out: restore blue and release the lock",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=[EXECUTION_STATUS_CHANGE],
                detail={
                    "stateMachineArn": [state_machine.state_machine_arn],
                    "status": ["ABORTED", "TIMED_OUT"],
                },
            ),
            targets=[target],
        )
