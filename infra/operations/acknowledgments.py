"""Acknowledged cdk-nag / Control Tower findings of the operations constructs, each with its reason.

Built per stage from its configuration because the IAM5 findings name the account and the
environment's resource names; infra/nag_acknowledgments.py applies them with the others (a
path that does not exist fails synthesis there).
"""

from __future__ import annotations

from contracts import names
from infra.config import EnvironmentConfig
from infra.iam_allowlist import WILDCARD_RESOURCE_ACTIONS

NAG = "AwsSolutions::AwsSolutions"
GUARD = "cdk-validator-cfnguard"
OPS = "RealtimeAnalytics/Operations"
FUNCTIONS = ("Backup", "CostCheck", "DrDrill", "DrVerify", "EventPathDrill")


def operations_acknowledgments(config: EnvironmentConfig) -> list[tuple[str, str, str]]:
    """(path relative to the stage, rule id, reason)."""
    env, account, region = config.environment, config.account, config.region
    group = names.cache_replication_group_id(env)
    temporary = names.temporary_group_prefix(env)
    cache = f"arn:<AWS::Partition>:elasticache:{region}:{account}"
    bucket = "<OperationsBackupsBucket74D48EB0.Arn>"
    iam5 = f"{NAG}-IAM5"
    wildcard = (
        "Resource * only for actions without resource-level permissions, each listed with AWS's reason "
        "in infra/iam_allowlist.py (" + ", ".join(sorted(WILDCARD_RESOURCE_ACTIONS)) + ")."
    )
    acks: list[tuple[str, str, str]] = []
    for function in FUNCTIONS:
        acks.append((f"{OPS}/Tasks/{function}/Role", f"{iam5}[Resource::*]", wildcard))
        acks.append(
            (
                f"{OPS}/Tasks/{function}/Function",
                f"{NAG}-L1",
                "Runtime pinned in configuration (lambdas.python_runtime) to the version the tasks are tested "
                "with and for which AWS publishes the Powertools v3 arm64 layer.",
            )
        )
    snapshots = (
        "The backup task's snapshots are named `<group>-<yyyy-mm-dd>` (one a day), created and pruned "
        "at run time; the pattern covers exactly this group's dated snapshots and their node clusters."
    )
    for resource in (f"{cache}:snapshot:{group}-*", f"{cache}:cluster:{group}-*"):
        acks.append((f"{OPS}/Tasks/Backup/Role", f"{iam5}[Resource::{resource}]", snapshots))
    objects = (
        "Objects are named per snapshot at run time (manifests/<snapshot>.json, exports/<snapshot>.json, "
        "<snapshot>-<n>.rdb written by ElastiCache); each grant is limited to one prefix of the backup bucket."
    )
    for prefix in ("manifests/*", "exports/*", f"{group}-*"):
        acks.append((f"{OPS}/Tasks/Backup/Role", f"{iam5}[Resource::{bucket}/{prefix}]", objects))
    for function in ("DrDrill", "DrVerify"):
        acks.append(
            (
                f"{OPS}/Tasks/{function}/Role",
                f"{iam5}[Resource::{bucket}/manifests/*]",
                "The drill reads the manifest of the snapshot it picks at run time; read-only, manifests/ only.",
            )
        )
    temporary_reason = (
        "A drill restores into a temporary group named per drill at run time (`"
        f"{temporary}<drill id>`); create, failover and delete are limited to that prefix, "
        "restores to this group's dated snapshots."
    )
    for resource in (
        f"{cache}:replicationgroup:{temporary}*",
        f"{cache}:cluster:{temporary}*",
        f"{cache}:snapshot:{group}-*",
    ):
        acks.append((f"{OPS}/Tasks/DrDrill/Role", f"{iam5}[Resource::{resource}]", temporary_reason))
    acks.append(
        (
            f"{OPS}/Tasks/DrDrill/Role",
            f"{iam5}[Resource::{cache}:parametergroup:default.*]",
            "CreateReplicationGroup without a parameter group uses the engine's default one "
            "(`default.valkey8` / `default.redis7`), which ElastiCache authorizes as a parametergroup resource.",
        )
    )
    invoke = (
        "Step Functions and EventBridge Scheduler invoke a function by ARN and its qualified ARNs "
        "(`<arn>:*`, CDK's grantInvoke); the grant names exactly the task function."
    )
    for logical in ("OperationsTasksDrDrillFunctionF999786B", "OperationsTasksDrVerifyFunction37031788"):
        acks.append((f"{OPS}/DrDrill/StateMachine/Role", f"{iam5}[Resource::<{logical}.Arn>:*]", invoke))
    acks.append(
        (
            f"{OPS}/DrDrill/StateMachine/Role",
            f"{iam5}[Resource::*]",
            "X-Ray tracing and CloudWatch Logs vended delivery of the state machine support no "
            "resource-level permissions (infra/iam_allowlist.py).",
        )
    )
    acks.append(
        (
            f"{OPS}/EventPathDrill/StateMachine/Role",
            f"{iam5}[Resource::<OperationsTasksEventPathDrillFunctionE6B32B14.Arn>:*]",
            invoke,
        )
    )
    acks.append(
        (
            f"{OPS}/EventPathDrill/StateMachine/Role",
            f"{iam5}[Resource::*]",
            "X-Ray tracing and CloudWatch Logs vended delivery of the state machine support no "
            "resource-level permissions (infra/iam_allowlist.py).",
        )
    )
    for logical in ("OperationsTasksBackupFunctionE1C15274", "OperationsTasksCostCheckFunctionA41DA9E3"):
        acks.append((f"{OPS}/Schedules/Role", f"{iam5}[Resource::<{logical}.Arn>:*]", invoke))
    for rule in (f"{NAG}-S1", f"{GUARD}::s3_bucket_logging_enabled_check"):
        acks.append(
            (
                f"{OPS}/Backups/Bucket",
                rule,
                "Three task roles and ElastiCache's exporter are the only writers or readers (bucket policy "
                "and roles); API calls are in CloudTrail. Server access logs would need a second bucket whose "
                "own logging raises the same finding.",
            )
        )
    acks.append(
        (
            f"{OPS}/Backups/Bucket",
            f"{GUARD}::s3_event_notifications_enabled_check",
            "The backup task reports every run itself (metrics, notice on failure); an event notification "
            "would add CDK's notification custom resource for no reader.",
        )
    )
    if config.backup.object_lock_days is None:
        acks.append(
            (
                f"{OPS}/Backups/Bucket",
                f"{GUARD}::s3_bucket_object_lock_enabled_check",
                f"{env}: backups are rebuildable test data; Object Lock is configured for production "
                "(backup.object_lock_days) where a locked retention outweighs being able to delete.",
            )
        )
    for rule in (f"{NAG}-SQS3", f"{GUARD}::sqs_dlq_check"):
        acks.append(
            (
                f"{OPS}/Schedules/Dlq",
                rule,
                "This queue is itself the dead-letter queue of the operations schedules; its alarm reports "
                "every message in it.",
            )
        )
    return acks
