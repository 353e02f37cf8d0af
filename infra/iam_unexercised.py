"""Granted actions the sandbox's permission tour does not exercise, each with the reason it stays.

tests/e2e/test_permissions.py runs every function and state machine of the staging stage on its
happy paths with IAM enforced, then fails on any granted action of a role that no call of that
role used and that is not listed here, and on any entry here that matches nothing. `callers` is a
glob over the names of the functions, state machines and schedules that use the role.

Three kinds of reason: AWS uses the grant on the role's behalf where the sandbox has no such
service (logs, ENIs, traces, log delivery); the sandbox stands in for what would use it (the
local Redis needs no AUTH token; schedules fire from the CLI); or the path is real but rare, and
the tour does not take it. Grants that nothing needs are marked "narrowing candidate".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Unexercised:
    action: str  # IAM action as granted (globs allowed)
    callers: str  # glob over the role's callers
    reason: str
    timing: bool = False  # exercised in some runs only (a race the tour does not force): never stale


_ENI = "the Lambda service creates and removes the function's ENIs in the VPC with the execution role"
_TRACES = "X-Ray: the Lambda and Step Functions services send the traces; the sandbox runs no X-Ray daemon"
_LOG_DELIVERY = (
    "Step Functions delivers the state machine's execution logs to its log group (vended log "
    "delivery); the sandbox keeps execution history in moto instead"
)
_REDIS_AUTH_NOTE = (
    "the Redis AUTH token: the sandbox's local Redis/Valkey server takes no AUTH and no TLS "
    "(REDIS_URL stands in), so the token is never read here"
)
_KEY_SET = (
    "CDK's key grant set on the release table's customer key; DynamoDB uses only Decrypt and "
    "GenerateDataKey on the caller's behalf"
)
_ALIASES = (
    "the shared alias grant (infra/orchestration/grants.py SERVICE_ALIAS_ACTIONS); this task only "
    "updates aliases: narrowing candidate"
)
_SCHEDULER = (
    "EventBridge Scheduler's role, for the schedules' dead-letter queue and its key: written only "
    "when a run fails all its retries; the tour's scheduled backup and DR drill are delivered"
)

UNEXERCISED: tuple[Unexercised, ...] = (
    Unexercised(
        "logs:CreateLogStream",
        "*",
        "the Lambda runtime (and VPC Flow Logs) write the logs; the sandbox writes them to files",
    ),
    Unexercised(
        "logs:PutLogEvents",
        "*",
        "the Lambda runtime (and VPC Flow Logs) write the logs; the sandbox writes them to files",
    ),
    *(
        Unexercised(action, "*", _ENI)
        for action in (
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSubnets",
            "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
        )
    ),
    *(
        Unexercised(action, "*", _TRACES)
        for action in (
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
        )
    ),
    *(
        Unexercised(action, "staging-*-drill", _LOG_DELIVERY)
        for action in (
            "logs:CreateLogDelivery",
            "logs:GetLogDelivery",
            "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies",
            "logs:DescribeLogGroups",
        )
    ),
    *(
        Unexercised(action, "staging-release", _LOG_DELIVERY)
        for action in (
            "logs:CreateLogDelivery",
            "logs:GetLogDelivery",
            "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies",
            "logs:DescribeLogGroups",
        )
    ),
    Unexercised(
        "logs:DescribeLogStreams", "*FlowLog*", "VPC Flow Logs' delivery role, used by the VPC service"
    ),
    *(
        Unexercised(
            action,
            "*CustomVpcRestrictDefaultSG*",
            "CDK's custom resource that empties the default "
            "security group at deploy time; the sandbox runs no CloudFormation",
        )
        for action in (
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:AuthorizeSecurityGroupEgress",
            "ec2:RevokeSecurityGroupIngress",
            "ec2:RevokeSecurityGroupEgress",
            "logs:CreateLogGroup",
        )
    ),
    Unexercised(
        "cloudwatch:PutMetricData",
        "*",
        "granted to every function for the project's namespace "
        "(infra/function_construct.py); Powertools publishes metrics as EMF log lines, and only the backup "
        "calls PutMetricData: narrowing candidate",
    ),
    Unexercised(
        "secretsmanager:GetSecretValue", "*", _REDIS_AUTH_NOTE + "; other secrets' reads are exercised"
    ),
    Unexercised(
        "secretsmanager:DescribeSecret",
        "*",
        "CDK's Secret.grant_read pairs DescribeSecret with GetSecretValue; the code reads values only",
    ),
    Unexercised(
        "secretsmanager:GetRandomPassword",
        "*rotate-api-key",
        "the rotation generates the new key "
        "locally (secrets.token_urlsafe); granted for Secrets Manager's own rotation templates: "
        "narrowing candidate",
    ),
    *(Unexercised(action, "staging-release*", _KEY_SET) for action in ("kms:DescribeKey", "kms:Encrypt")),
    *(Unexercised(action, "staging-*drill*", _KEY_SET) for action in ("kms:DescribeKey", "kms:Encrypt")),
    Unexercised(
        "kms:GenerateDataKey",
        "staging-release",
        "the state machine's DynamoDB writes (lock) are "
        "judged with the table key's Decrypt; GenerateDataKey is part of CDK's grant set",
    ),
    Unexercised(
        "kms:GenerateDataKey",
        "staging-[!r]*-drill",
        "the drills' DynamoDB writes (lock) are judged "
        "with the table key's Decrypt; GenerateDataKey is part of CDK's grant set",
    ),
    Unexercised(
        "kms:DescribeKey",
        "staging-ops-backup",
        "ElastiCache and S3 describe the backup key when "
        "they use it on the caller's behalf, not the function",
    ),
    Unexercised(
        "kms:CreateGrant",
        "staging-ops-*",
        "ElastiCache creates a grant on the customer key when it "
        "encrypts a snapshot or a restored group; the sandbox's ElastiCache encrypts nothing",
    ),
    Unexercised(
        "elasticache:AddTagsToResource",
        "staging-ops-*",
        "needed by CreateSnapshot and "
        "CreateReplicationGroup when they pass Tags; the sandbox's IAM mapping judges the create only",
    ),
    Unexercised(
        "elasticache:DeleteSnapshot",
        "staging-ops-backup",
        "the backup deletes snapshots older than their retention; the tour's sandbox holds one snapshot",
    ),
    *(
        Unexercised(
            action,
            "staging-ops-backup",
            "S3 checks these for ElastiCache's export to the bucket "
            "(the snapshot export's documented bucket permissions); the sandbox's export writes directly",
        )
        for action in ("s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketAcl")
    ),
    Unexercised(
        "sns:Publish",
        "staging-ops-*",
        "operations notices go out on a failure or a cost anomaly; the "
        "tour's backup and cost check are healthy",
    ),
    Unexercised(
        "sns:Publish",
        "staging-release-judge-canary",
        "JudgeCanary notifies a marginal or failing verdict only; the tour's releases pass",
    ),
    Unexercised(
        "kms:GenerateDataKey",
        "staging-release-judge-canary",
        "the releases topic's key, used when a marginal or failing verdict is published",
    ),
    Unexercised(
        "sns:Publish",
        "staging-realtime-fanout",
        "alerts are published when an alert rule fires; the tour's events trigger none",
    ),
    Unexercised(
        "kms:GenerateDataKey*",
        "staging-realtime-fanout",
        "the messaging key (the alerts topic's and "
        "the event queues'), used when an alert is published or a split event's delivery shards are "
        "queued; the tour does neither",
    ),
    Unexercised(
        "sqs:SendMessage",
        "staging-realtime-fanout",
        "a split event's delivery shards are queued back "
        "onto the event queues only for channels with more subscribers than FANOUT_SPLIT_ABOVE (500 in "
        "staging); the tour's channels have a few (the split is covered by tests/unit/service/"
        "test_fanout_shards.py and tests/integration/gateway/test_gateway_shards.py)",
    ),
    Unexercised(
        "kms:Decrypt",
        "staging-ops-*",
        "the operations topic's key (notices on failure or anomaly) and "
        "the backup key (read back only by a restore)",
    ),
    Unexercised(
        "kms:GenerateDataKey",
        "staging-ops-cost-check",
        "the operations topic's key, used when an anomaly notice is published",
    ),
    Unexercised(
        "sqs:ChangeMessageVisibility",
        "staging-realtime-fanout",
        "Lambda's poller gives a batch back "
        "(visibility 0) when it was received as the mapping was being disabled; the event-path drill "
        "hits that window in some runs only",
        timing=True,
    ),
    Unexercised(
        "sqs:GetQueueUrl",
        "staging-realtime-fanout",
        "CDK's Queue.grant_consume_messages includes "
        "GetQueueUrl; Lambda's poller addresses the queue by its ARN",
    ),
    Unexercised(
        "cloudwatch:GetMetricStatistics",
        "*check-alarms",
        "read only when a release asks for "
        "min_green_invocations > 0; the tour's releases run without live traffic",
    ),
    Unexercised(
        "dynamodb:DeleteItem",
        "staging-release-*",
        "the table_write grant set; these tasks put and "
        "update records, and the state machine deletes the lock itself: narrowing candidate",
    ),
    Unexercised(
        "dynamodb:Query",
        "staging-release-*",
        "the table_read grant set (history by environment); "
        "these tasks read single items: narrowing candidate",
    ),
    Unexercised(
        "dynamodb:GetItem",
        "staging-release-*",
        "the table_read grant set; these tasks write the "
        "record without reading it first: narrowing candidate",
    ),
    Unexercised(
        "dynamodb:UpdateItem",
        "*record-release",
        "record-release puts whole records; UpdateItem is part of the table_write set: narrowing candidate",
    ),
    Unexercised(
        "dynamodb:UpdateItem",
        "*drain-canary",
        "DrainCanary only appends its CANARY_DRAINED audit event (PutItem); UpdateItem is part of the "
        "table_write set: narrowing candidate",
    ),
    Unexercised(
        "kms:GenerateDataKey",
        "*drain-canary",
        "DrainCanary's audit event (PutItem) is judged with the table key's Decrypt; GenerateDataKey is "
        "part of CDK's grant set",
    ),
    Unexercised(
        "lambda:CreateAlias",
        "staging-release-*",
        "DeployGreen creates `green` only where it is "
        "missing (a stack deployed before the alias existed); " + _ALIASES,
    ),
    Unexercised("lambda:GetAlias", "staging-release-*", _ALIASES),
    *(
        Unexercised(
            action,
            "*rollback*",
            "read when the alarm rollback or Rollback must find blue without the "
            "release record's versions (a record lost or never written)",
        )
        for action in ("lambda:GetFunctionConfiguration", "lambda:ListVersionsByFunction")
    ),
    Unexercised(
        "cloudfront-keyvaluestore:PutKey",
        "*release-rollback",
        "Rollback writes the edge's share only when a `connections` release failed after a step below "
        "100% moved it; the tour's connections releases fail before their first step (synthetic "
        "checks) or are rolled back by the alarm path, which writes it with its own role",
    ),
    *(
        Unexercised(action, "staging-realtime-backup*", _SCHEDULER)
        for action in (
            "sqs:SendMessage",
            "kms:GenerateDataKey",
            "kms:Decrypt",
        )
    ),
)


def listed_reason(action: str, callers: Iterable[str]) -> Unexercised | None:
    """The entry that explains an unexercised grant of `action` to a role used by `callers`."""
    names = list(callers)
    for entry in UNEXERCISED:
        if fnmatchcase(action.lower(), entry.action.lower()) and any(
            fnmatchcase(n, entry.callers) for n in names
        ):
            return entry
    return None
