"""Customer-managed KMS keys, one per kind of data, each usable only by the services that need it.

Separate keys keep grants narrow: a function allowed to read the queue cannot decrypt the
cache snapshots, and a key can be disabled for one concern without touching the others.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig
from infra.kms_keys import customer_managed_key


class KeysConstruct(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        env = config.environment
        stack = Stack.of(self)
        self.logs = self._key(
            "Logs", env, "logs", "CloudWatch Logs groups (Lambda, flow logs, API access logs)"
        )
        # CloudWatch Logs encrypts with the key itself; scoped to this account's log groups.
        self.logs.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{stack.region}:{stack.account}:*"
                    }
                },
            )
        )
        self.messaging = self._key("Messaging", env, "messaging", "SQS queues and SNS topics")
        # Alarm actions publish to the KMS-encrypted operations topic; CloudWatch needs the key.
        self.messaging.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToEncryptedTopics",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        self.cache = self._key("Cache", env, "cache", "ElastiCache data at rest and snapshots")
        self.secrets = self._key(
            "Secrets", env, "secrets", "Secrets Manager secrets (API keys, cache AUTH token)"
        )

    def _key(self, construct_id: str, env: str, purpose: str, description: str) -> kms.Key:
        return customer_managed_key(
            self,
            construct_id,
            alias=names.kms_alias(env, purpose),
            description=f"{env} realtime analytics: {description}",
        )
