"""The release table and its key: environment locks, release records and their audit trail.

Layout (tasks/release_record.py): `pk`/`sk` strings (`lock#<env>`/`lock`,
`release#<id>`/`record`, `release#<id>`/`event#<time>#<n>`), the `by_environment` index on
`gsi1pk`/`gsi1sk` (`env#<env>`, start time). The lock's `expires_at` is an ISO-8601 string
compared by the lock's conditional write (an abandoned lock is taken over, never deleted by
DynamoDB), so the table has no TTL: the history is the audit trail and is kept.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from contracts import names
from infra.kms_keys import customer_managed_key

ENVIRONMENT_INDEX = "by_environment"


class ReleaseTable(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, environment: str) -> None:
        super().__init__(scope, construct_id)
        # Its own key: whoever may read the release history needs this key, and nothing else does.
        self.key = customer_managed_key(
            self,
            "Key",
            alias=names.release_key_alias(environment),
            description=f"{environment} realtime analytics: release table and release notifications",
        )
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=names.release_table_name(environment),
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # The audit trail outlives any stack operation.
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=ENVIRONMENT_INDEX,
            partition_key=dynamodb.Attribute(name="gsi1pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="gsi1sk", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )

    def index_arn(self) -> str:
        return f"{self.table.table_arn}/index/{ENVIRONMENT_INDEX}"
