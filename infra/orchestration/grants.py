"""What each `tasks/catalog.py` permission means in IAM, scoped to the exact resources.

Every statement names its resources: the service functions (and their versions and aliases,
`<function-arn>:*`), the release table and its index, the release topic, the artifact bucket's
objects, the release state machine's executions, the connection canary's KeyValueStore, the
canary stage's `@connections` and the drain task function. The only `*` are
`cloudwatch:GetMetricStatistics` and `cloudwatch:GetMetricData`, which support no resource-level
permissions, and
`cloudwatch:DescribeAlarms`, which returns composite alarms only when it is allowed on `*`
(infra/iam_allowlist.py). KMS permissions name the exact key and are limited to use through
the service that owns the data (`kms:ViaService`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs

from infra.orchestration.table import ReleaseTable
from tasks.catalog import Permission

SERVICE_READ_ACTIONS = ("lambda:GetAlias", "lambda:GetFunctionConfiguration", "lambda:ListVersionsByFunction")
SERVICE_DEPLOY_ACTIONS = (
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
    "lambda:PublishVersion",
    # The `function_updated_v2` waiter polls GetFunction.
    "lambda:GetFunction",
    "lambda:GetFunctionConfiguration",
    "lambda:ListVersionsByFunction",
)
SERVICE_ALIAS_ACTIONS = ("lambda:GetAlias", "lambda:UpdateAlias", "lambda:CreateAlias")
TABLE_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query")
# TransactWriteItems is authorized per contained operation (PutItem here).
TABLE_WRITE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
# What DynamoDB asks KMS for on the caller's behalf when it reads or writes a CMK-encrypted table.
TABLE_KEY_READ_ACTIONS = ("kms:Decrypt", "kms:DescribeKey")
TABLE_KEY_WRITE_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey")
# SNS and SQS encrypt a message with a data key from the topic's / queue's CMK.
MESSAGE_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
# The canary share (contracts/canary.py): GetKey reads it; PutKey writes it and needs the store's
# ETag (IfMatch), which DescribeKeyValueStore gives. All three take the `key-value-store` resource
# (Service Authorization Reference, Amazon CloudFront KeyValueStore); nothing lists, deletes or
# batch-updates keys. The data-plane API signs with SigV4A: task code needs awscrt (requirements.lock).
CANARY_STORE_ACTIONS = (
    "cloudfront-keyvaluestore:DescribeKeyValueStore",
    "cloudfront-keyvaluestore:GetKey",
    "cloudfront-keyvaluestore:PutKey",
)
# The drain only closes canary connections (`DeleteConnection` is `DELETE @connections/<id>`); it
# never posts to or reads one (tasks/drain_canary.py).
CANARY_DRAIN_METHODS = ("DELETE",)


@dataclass(frozen=True)
class GrantTargets:
    """The resources the release tasks act on."""

    table: ReleaseTable
    topic: sns.ITopic
    topic_key: kms.IKey
    service_functions: Mapping[str, lambda_.IFunction]
    artifact_bucket_name: str
    # `arn:...:execution:<env>-release:*`, built from the name (no dependency on the state machine).
    execution_arn_pattern: str
    cache_auth_secret: secretsmanager.ISecret
    api_keys_secret: secretsmanager.ISecret
    preview_events_queue: sqs.IQueue
    messaging_key: kms.IKey
    # The connection canary's CloudFront KeyValueStore (infra/edge_construct.py).
    canary_store_arn: str
    # `<api>/canary/<method>/@connections/*` per CANARY_DRAIN_METHODS method.
    canary_connections_arns: tuple[str, ...]
    # The drain task function, built from its name (no dependency on the function).
    drain_function_arn: str


class TaskGrants:
    def __init__(self, scope_stack: Stack, targets: GrantTargets) -> None:
        self._stack = scope_stack
        self._t = targets
        self._grants: dict[Permission, Callable[[iam.IRole], None]] = {
            "table_read": self._table_read,
            "table_write": self._table_write,
            "topic_publish": self._topic_publish,
            "service_read": lambda role: self._service(role, "ReadServiceFunctions", SERVICE_READ_ACTIONS),
            "service_deploy": lambda role: self._service(
                role, "DeployServiceFunctions", SERVICE_DEPLOY_ACTIONS
            ),
            "service_aliases": lambda role: self._service(role, "MoveServiceAliases", SERVICE_ALIAS_ACTIONS),
            "artifact_read": self._artifact_read,
            "alarms_read": self._alarms_read,
            "metrics_read": self._metrics_read,
            "metrics_judge": self._metrics_judge,
            "execution_stop": self._execution_stop,
            "redis": self._redis,
            "synthetic": self._synthetic,
            "canary_store": self._canary_store,
            "canary_drain": self._canary_drain,
            "drain_invoke": self._drain_invoke,
        }

    def grant(self, role: iam.IRole, permissions: Sequence[Permission]) -> None:
        unknown = [p for p in permissions if p not in self._grants]
        if unknown:
            raise KeyError(f"no IAM meaning defined for task permission(s) {', '.join(unknown)}")
        for permission in permissions:
            self._grants[permission](role)

    # -- statements ---------------------------------------------------------------------------

    def _add(
        self,
        role: iam.IRole,
        sid: str,
        actions: Sequence[str],
        resources: Sequence[str],
        conditions: Mapping[str, object] | None = None,
    ) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid=sid,
                actions=list(actions),
                resources=list(resources),
                conditions=dict(conditions) if conditions else None,
            )
        )

    def _via(self, service: str) -> dict[str, object]:
        return {"StringEquals": {"kms:ViaService": f"{service}.{self._stack.region}.amazonaws.com"}}

    def _table_read(self, role: iam.IRole) -> None:
        table = self._t.table
        self._add(role, "ReadReleaseTable", TABLE_READ_ACTIONS, [table.table.table_arn, table.index_arn()])
        self._add(
            role, "DecryptReleaseTable", TABLE_KEY_READ_ACTIONS, [table.key.key_arn], self._via("dynamodb")
        )

    def _table_write(self, role: iam.IRole) -> None:
        table = self._t.table
        self._add(role, "WriteReleaseTable", TABLE_WRITE_ACTIONS, [table.table.table_arn])
        self._add(
            role, "EncryptReleaseTable", TABLE_KEY_WRITE_ACTIONS, [table.key.key_arn], self._via("dynamodb")
        )

    def _topic_publish(self, role: iam.IRole) -> None:
        self._add(role, "PublishReleaseNotifications", ["sns:Publish"], [self._t.topic.topic_arn])
        self._add(
            role,
            "EncryptReleaseNotifications",
            MESSAGE_KEY_ACTIONS,
            [self._t.topic_key.key_arn],
            self._via("sns"),
        )

    def _service(self, role: iam.IRole, sid: str, actions: Sequence[str]) -> None:
        resources = []
        for function in self._t.service_functions.values():
            # The function itself, and its versions and aliases (`:<qualifier>`).
            resources += [function.function_arn, f"{function.function_arn}:*"]
        self._add(role, sid, actions, resources)

    def _artifact_read(self, role: iam.IRole) -> None:
        # HeadObject and Lambda's own fetch for UpdateFunctionCode both need s3:GetObject of the caller.
        bucket_objects = self._stack.format_arn(
            service="s3",
            region="",
            account="",
            resource=self._t.artifact_bucket_name,
            resource_name="service/*",
        )
        self._add(role, "ReadServiceBundles", ["s3:GetObject"], [bucket_objects])

    def _alarms_read(self, role: iam.IRole) -> None:
        # Scoped to alarm ARNs, DescribeAlarms silently leaves composite alarms out of its answer
        # (CloudWatch API reference, DescribeAlarms): `<env>-release-health` needs `*`.
        self._add(role, "DescribeReleaseAlarms", ["cloudwatch:DescribeAlarms"], ["*"])

    def _metrics_read(self, role: iam.IRole) -> None:
        self._add(role, "ReadGreenInvocations", ["cloudwatch:GetMetricStatistics"], ["*"])

    def _metrics_judge(self, role: iam.IRole) -> None:
        self._add(role, "CompareGreenWithBlue", ["cloudwatch:GetMetricData"], ["*"])

    def _execution_stop(self, role: iam.IRole) -> None:
        self._add(role, "StopReleaseExecution", ["states:StopExecution"], [self._t.execution_arn_pattern])

    def _redis(self, role: iam.IRole) -> None:
        self._t.cache_auth_secret.grant_read(role)

    def _synthetic(self, role: iam.IRole) -> None:
        self._t.api_keys_secret.grant_read(role)
        self._add(role, "PublishMarkedEvents", ["sqs:SendMessage"], [self._t.preview_events_queue.queue_arn])
        self._add(
            role,
            "EncryptMarkedEvents",
            MESSAGE_KEY_ACTIONS,
            [self._t.messaging_key.key_arn],
            self._via("sqs"),
        )

    def _canary_store(self, role: iam.IRole) -> None:
        self._add(role, "SetCanaryShare", CANARY_STORE_ACTIONS, [self._t.canary_store_arn])

    def _canary_drain(self, role: iam.IRole) -> None:
        # Connection ids exist only at run time: `@connections/*` of the canary stage, DELETE only.
        self._add(
            role, "DrainCanaryConnections", ["execute-api:ManageConnections"], self._t.canary_connections_arns
        )

    def _drain_invoke(self, role: iam.IRole) -> None:
        # The unqualified function only: the alarm rollback invokes `$LATEST` of the drain task.
        self._add(role, "InvokeCanaryDrain", ["lambda:InvokeFunction"], [self._t.drain_function_arn])
