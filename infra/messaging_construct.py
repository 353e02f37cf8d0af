"""Event queues (live and preview, each with a dead-letter queue) and the SNS topics.

`events` feeds the fan-out function's `live` alias; `preview-events` feeds its `green` alias,
so synthetic checks exercise green's fan-out before it takes traffic. Everything is encrypted
with the messaging CMK and refuses plain-HTTP access.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig

QUEUES = ("events", "preview-events")
TOPICS = ("alerts", "operations")


class MessagingConstruct(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        env = config.environment
        settings = config.messaging
        self.queues: dict[str, sqs.Queue] = {}
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        for name in QUEUES:
            label = "".join(part.capitalize() for part in name.split("-"))
            dlq = sqs.Queue(
                self,
                f"{label}Dlq",
                queue_name=names.dlq_name(env, name),
                encryption=sqs.QueueEncryption.KMS,
                encryption_master_key=key,
                data_key_reuse=Duration.minutes(5),
                retention_period=Duration.days(settings.dlq_retention_days),
                enforce_ssl=True,
            )
            queue = sqs.Queue(
                self,
                f"{label}Queue",
                queue_name=names.queue_name(env, name),
                encryption=sqs.QueueEncryption.KMS,
                encryption_master_key=key,
                data_key_reuse=Duration.minutes(5),
                retention_period=Duration.days(settings.retention_days),
                visibility_timeout=Duration.seconds(settings.visibility_timeout_seconds),
                enforce_ssl=True,
                dead_letter_queue=sqs.DeadLetterQueue(
                    queue=dlq, max_receive_count=settings.dlq_max_receive_count
                ),
            )
            self.queues[name] = queue
            self.dead_letter_queues[name] = dlq

        self.topics: dict[str, sns.Topic] = {}
        for name in TOPICS:
            topic = sns.Topic(
                self,
                f"{name.capitalize()}Topic",
                topic_name=names.topic_name(env, name),
                display_name=f"{env} realtime analytics {name}",
                master_key=key,
                enforce_ssl=True,
            )
            self.topics[name] = topic
        # CloudWatch alarm actions publish to the operations topic.
        self.topics["operations"].add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topics["operations"].topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": config.account}},
            )
        )
        if config.operations_email:
            self.topics["operations"].add_subscription(
                subscriptions.EmailSubscription(config.operations_email)
            )

    @property
    def events_queue(self) -> sqs.Queue:
        return self.queues["events"]

    @property
    def preview_events_queue(self) -> sqs.Queue:
        return self.queues["preview-events"]

    @property
    def alerts_topic(self) -> sns.Topic:
        return self.topics["alerts"]

    @property
    def operations_topic(self) -> sns.Topic:
        return self.topics["operations"]
