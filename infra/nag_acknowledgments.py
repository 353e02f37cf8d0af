"""Every acknowledged cdk-nag / Control Tower finding of the project, each with its reason.

An entry names a construct path relative to the Stage (the acknowledgment covers that
construct and everything under it), the rule id as the validation report prints it
(`<plugin>::<rule>`), and why the finding is accepted. A path that no longer exists fails
synthesis, so stale acknowledgments cannot linger. Other parts of the infrastructure append
their own entries here.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, Stage, Validations
from constructs import IConstruct

from infra.iam_allowlist import WILDCARD_RESOURCE_ACTIONS
from service.catalog import released_keys

NAG = "AwsSolutions::AwsSolutions"
GUARD = "cdk-validator-cfnguard"
STACK = "RealtimeAnalytics"


@dataclass(frozen=True)
class Ack:
    path: str
    rule: str
    reason: str
    # Findings that exist only for one cache engine (the guard's ElastiCache rules key on redis).
    only_for_engine: str | None = None


def _label(key: str) -> str:
    return "".join(part.capitalize() for part in key.replace("-", "_").split("_"))


_FUNCTIONS = [f"{STACK}/Service/{_label(key)}" for key in released_keys()] + [f"{STACK}/Secrets/Rotation"]
_WILDCARD_REASON = (
    "Resource * only for actions that support no resource-level permissions, each listed with AWS's "
    "reason in infra/iam_allowlist.py (" + ", ".join(sorted(WILDCARD_RESOURCE_ACTIONS)) + "); "
    "tests/infra/test_iam_scoping.py fails on any other wildcard resource."
)

ACKNOWLEDGMENTS: list[Ack] = [
    Ack(
        f"{STACK}/Network/CacheNacl",
        f"{NAG}-VPC3",
        "Deliberate second fence around the isolated cache subnets: only the cache port from the "
        "Lambda subnets and replication between cache subnets pass, whatever the security groups say.",
    ),
    Ack(
        f"{STACK}/Cache/AuthToken",
        f"{NAG}-SMG4",
        "Not rotated automatically: changing the cache AUTH token takes ModifyReplicationGroup with "
        "AuthTokenUpdateStrategy ROTATE, then SET once every function uses the new token, a coordinated "
        "operation outside Secrets Manager's rotation steps. The cache is reachable only from the Lambda "
        "security group, behind a NACL, over TLS.",
    ),
    Ack(
        f"{STACK}/Service/Fanout/Role",
        f"{NAG}-IAM5[Action::kms:GenerateDataKey*]",
        "Publishing to the KMS-encrypted alerts topic needs kms:GenerateDataKey* (CDK's "
        "Topic.grantPublish); the statement is scoped to the messaging key only.",
    ),
    Ack(
        f"{STACK}/Custom::VpcRestrictDefaultSGCustomResourceProvider",
        f"{GUARD}::lambda_inside_vpc_check",
        "CDK's provider that strips the default security group's rules runs once at deploy time, "
        "calls only the EC2 API and stores no data; it is not attached to the VPC it is configuring.",
    ),
    *[
        Ack(
            f"{STACK}/Messaging/{queue}Dlq",
            f"{GUARD}::sqs_dlq_check",
            "This queue is itself the dead-letter queue of its event queue; a DLQ of a DLQ would only "
            "move the messages the DLQ alarms already report.",
        )
        for queue in ("Events", "PreviewEvents")
    ],
    *[Ack(f"{path}/Role", f"{NAG}-IAM5[Resource::*]", _WILDCARD_REASON) for path in _FUNCTIONS],
    *[
        Ack(
            f"{path}/Function",
            f"{NAG}-L1",
            "Runtime pinned in configuration (lambdas.python_runtime, python3.12) to the version the "
            "service is tested with and for which AWS publishes the Powertools v3 arm64 layer; "
            "upgrading is a configuration change.",
        )
        for path in _FUNCTIONS
    ],
    Ack(
        f"{STACK}/Cache/ReplicationGroup",
        f"{GUARD}::elasticache_repl_grp_rbac_auth_enabled_check",
        "Redis AUTH chosen over RBAC: one service identity with one set of command needs, AUTH works the "
        "same on Valkey and Redis, and ElastiCache's ROTATE strategy changes tokens without downtime "
        "(infra/cache_construct.py). cdk-nag AwsSolutions-AEC6 requires AUTH; this rule requires RBAC.",
        only_for_engine="redis",
    ),
]


class StaleAcknowledgment(LookupError):
    """An acknowledgment names a construct path that does not exist."""


def _find(stage: Stage, path: str) -> IConstruct | None:
    target: IConstruct | None = stage
    for part in path.split("/"):
        target = target.node.try_find_child(part) if target is not None else None
    return target


def acknowledge(stage: Stage, engine: str) -> None:
    for ack in ACKNOWLEDGMENTS:
        if ack.only_for_engine and ack.only_for_engine != engine:
            continue
        target = _find(stage, ack.path)
        if target is None:
            raise StaleAcknowledgment(f"acknowledgment of {ack.rule}: no construct at {stage.node.id}/{ack.path}")
        Validations.of(target).acknowledge(Acknowledgment(id=ack.rule, reason=ack.reason))
