"""The project's customer-managed KMS key: rotated, retained, and not delegable by grant.

Every key of the stage (infra/keys_construct.py's per-purpose keys, the backups' key, the release
table's key) is made here, so the rules a key must follow are written once.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


def customer_managed_key(scope: Construct, construct_id: str, *, alias: str, description: str) -> kms.Key:
    """A KMS key with yearly rotation, kept on stack deletion, whose grants only AWS services may create.

    Grants only for AWS services acting on our behalf (ElastiCache, Secrets Manager, SQS, DynamoDB):
    no principal can hand the key to someone else with a grant (Control Tower CT.KMS.PR.3).
    """
    key = kms.Key(
        scope,
        construct_id,
        alias=alias,
        description=description,
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyGrantsExceptForAwsServices",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["kms:CreateGrant"],
            resources=["*"],
            conditions={
                "BoolIfExists": {
                    "kms:GrantIsForAWSResource": "false",
                    "aws:PrincipalIsAWSService": "false",
                }
            },
        )
    )
    return key
