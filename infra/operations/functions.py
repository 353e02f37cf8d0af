"""The operations Lambdas (backup, cost check, DR drill and its verifier).

Each is a hardened function (infra/function_construct.py) from the task bundle with its own role
that receives exactly the statements below, every one naming its resources: the live
replication group and its `<group>-<date>` snapshots, the drills' temporary groups
(`<env[:4]>-drill-*`), the backup bucket and key, the release table (the lock and drill records)
and its key, the operations topic. The only `*` resources are
actions without resource-level permissions (infra/iam_allowlist.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig
from infra.function_construct import HardenedFunction
from infra.operations.backup_bucket import BackupBucket

MESSAGE_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
TABLE_KEY_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey")
# ElastiCache encrypts a new snapshot or group with the cache key through a grant it creates.
CACHE_KEY_ACTIONS = ("kms:CreateGrant", "kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey")


@dataclass(frozen=True)
class FunctionSpec:
    key: str
    handler: str
    description: str
    timeout_seconds: int
    memory_mb: int
    # Reaches Redis (the cache's client security group and the Redis variables).
    needs_cache: bool


SPECS = (
    FunctionSpec(
        "backup",
        "tasks.backup.handler",
        "Daily manual snapshot, manifest, S3 export, cross-region copy, retention pruning",
        900,
        512,
        True,
    ),
    FunctionSpec(
        "cost-check",
        "tasks.cost_check.handler",
        "Daily Cost Explorer check against the budget and the trailing 7-day mean",
        120,
        256,
        False,
    ),
    FunctionSpec(
        "dr-drill",
        "tasks.dr_drill.handler",
        "DR drill steps: pick, restore into a temporary group, check, failover, delete, record",
        120,
        256,
        False,
    ),
    FunctionSpec(
        "dr-verify",
        "tasks.dr_drill.verify_handler",
        "DR drill: the restored temporary group against the backup manifest",
        600,
        512,
        True,
    ),
    # In the VPC with cache access: delivery is proven by the fan-out's snapshot keys in Redis.
    FunctionSpec(
        "event-path-drill",
        "tasks.event_path_drill.handler",
        "Event-path drill steps: marked events to the preview DLQ, redrive, delivery check",
        300,
        256,
        True,
    ),
)


@dataclass(frozen=True)
class EventPathTargets:
    """What the event-path drill drives: preview-events, its DLQ, and its mapping to fanout:green."""

    queue: sqs.IQueue
    dead_letter_queue: sqs.IQueue
    # The UUID of the preview-events -> fanout:green event source mapping.
    mapping_id: str
    fanout_function: lambda_.IFunction


@dataclass(frozen=True)
class OpsFunctionsProps:
    config: EnvironmentConfig
    code: lambda_.Code
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    # Admitted by the cache (the service Lambdas' group) and the VPC endpoints' group.
    cache_client_security_group: ec2.ISecurityGroup
    endpoint_security_group: ec2.ISecurityGroup
    logs_key: kms.IKey
    cache_key: kms.IKey
    messaging_key: kms.IKey
    cache_environment: Mapping[str, str]
    cache_auth_secret: secretsmanager.ISecret
    cache_subnet_group_name: str
    cache_security_group: ec2.ISecurityGroup
    backups: BackupBucket
    operations_topic: sns.ITopic
    table: dynamodb.ITable
    table_key: kms.IKey
    event_path: EventPathTargets


class OpsFunctions(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: OpsFunctionsProps) -> None:
        super().__init__(scope, construct_id)
        config = props.config
        env = config.environment
        self._props = props
        self._stack = Stack.of(self)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description="Operations tasks without cache access: HTTPS out only (AWS APIs)",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs")
        props.endpoint_security_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(443), "HTTPS from the operations tasks"
        )
        group = names.cache_replication_group_id(env)
        common = {
            "ENVIRONMENT": env,
            "OPERATIONS_TOPIC_ARN": props.operations_topic.topic_arn,
            "POWERTOOLS_SERVICE_NAME": "operations",
            "POWERTOOLS_METRICS_NAMESPACE": names.METRICS_NAMESPACE,
            "LOG_LEVEL": config.log_level,
        }
        drill_env = {
            "REPLICATION_GROUP_ID": group,
            "BACKUP_BUCKET": props.backups.bucket.bucket_name,
            "RELEASE_TABLE_NAME": props.table.table_name,
            "CACHE_SUBNET_GROUP": props.cache_subnet_group_name,
            "CACHE_SECURITY_GROUP_IDS": props.cache_security_group.security_group_id,
            "REDIS_PORT": str(config.cache.port),
            "REDIS_AUTH_SECRET_ARN": props.cache_auth_secret.secret_arn,
            "CACHE_KMS_KEY_ID": props.cache_key.key_arn,
        }
        backup = config.backup
        environments: dict[str, dict[str, str]] = {
            "backup": {
                "REPLICATION_GROUP_ID": group,
                "BACKUP_BUCKET": props.backups.bucket.bucket_name,
                "BACKUP_RETENTION_DAYS": str(backup.snapshot_retention_days),
                "BACKUP_SNAPSHOT_KMS_KEY_ID": props.cache_key.key_arn,
                **(
                    {"BACKUP_COPY_BUCKET": backup.copy_bucket_name, "BACKUP_COPY_REGION": backup.copy_region}
                    if backup.copy_bucket_name and backup.copy_region
                    else {}
                ),
            },
            "cost-check": {
                "DAILY_BUDGET_USD": f"{config.budget.daily_limit_usd:g}",
                "COST_TAG_KEY": "Project",
                "COST_TAG_VALUE": names.PROJECT,
            },
            "dr-drill": drill_env,
            "dr-verify": drill_env,
            "event-path-drill": {
                "PREVIEW_EVENTS_QUEUE_URL": props.event_path.queue.queue_url,
                "PREVIEW_EVENTS_DLQ_URL": props.event_path.dead_letter_queue.queue_url,
                "PREVIEW_MAPPING_UUID": props.event_path.mapping_id,
                "FANOUT_FUNCTION_NAME": props.event_path.fanout_function.function_name,
                "RELEASE_TABLE_NAME": props.table.table_name,
            },
        }
        self.hardened: dict[str, HardenedFunction] = {}
        self.functions: dict[str, lambda_.Function] = {}
        for spec in SPECS:
            variables = {**common, **environments[spec.key]}
            if spec.needs_cache:
                variables.update(props.cache_environment)
            hardened = HardenedFunction(
                self,
                _label(spec.key),
                config=config,
                function_name=names.ops_function_name(env, spec.key),
                handler=spec.handler,
                description=spec.description[:256],
                code=props.code,
                memory_mb=spec.memory_mb,
                timeout_seconds=spec.timeout_seconds,
                # Scheduled once a day or week; a second concurrent run would only race the first.
                reserved_concurrency=1 if spec.key in ("backup", "cost-check") else 2,
                environment=variables,
                vpc=props.vpc,
                subnets=props.subnets,
                security_group=props.cache_client_security_group if spec.needs_cache else self.security_group,
                logs_key=props.logs_key,
            )
            if spec.needs_cache:
                props.cache_auth_secret.grant_read(hardened.role)
            self.hardened[spec.key] = hardened
            self.functions[spec.key] = hardened.function
        self._grant_backup(self.hardened["backup"].role, group)
        self._grant_cost_check(self.hardened["cost-check"].role)
        self._grant_drill(self.hardened["dr-drill"].role, group)
        self._grant_verify(self.hardened["dr-verify"].role)
        self._grant_event_path_drill(self.hardened["event-path-drill"].role)
        for key in ("backup", "cost-check", "dr-drill", "event-path-drill"):
            self._grant_notify(self.hardened[key].role)

    # -- ARNs -------------------------------------------------------------------------------

    def _cache_arn(self, resource: str, name: str) -> str:
        return self._stack.format_arn(
            service="elasticache",
            resource=resource,
            resource_name=name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _key_statement(
        self, sid: str, key: kms.IKey, actions: tuple[str, ...], service: str
    ) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid=sid,
            actions=list(actions),
            resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"{service}.{self._stack.region}.amazonaws.com"}},
        )

    # -- grants -----------------------------------------------------------------------------

    def _grant_notify(self, role: iam.IRole) -> None:
        props = self._props
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="NotifyOperations", actions=["sns:Publish"], resources=[props.operations_topic.topic_arn]
            )
        )
        role.add_to_principal_policy(
            self._key_statement("EncryptOperationsNotices", props.messaging_key, MESSAGE_KEY_ACTIONS, "sns")
        )

    def _grant_manifest_read(self, role: iam.IRole) -> None:
        props = self._props
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadManifests",
                actions=["s3:GetObject"],
                resources=[props.backups.bucket.arn_for_objects("manifests/*")],
            )
        )
        role.add_to_principal_policy(
            self._key_statement("DecryptBackups", props.backups.key, ("kms:Decrypt",), "s3")
        )

    def _grant_backup(self, role: iam.IRole, group: str) -> None:
        props = self._props
        snapshots = self._cache_arn("snapshot", f"{group}-*")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="SnapshotTheCache",
                actions=[
                    "elasticache:CreateSnapshot",
                    "elasticache:DescribeSnapshots",
                    "elasticache:CopySnapshot",
                    "elasticache:DeleteSnapshot",
                    "elasticache:AddTagsToResource",
                ],
                resources=[
                    self._cache_arn("replicationgroup", group),
                    self._cache_arn("cluster", f"{group}-*"),
                    snapshots,
                ],
            )
        )
        role.add_to_principal_policy(
            self._key_statement("EncryptSnapshots", props.cache_key, CACHE_KEY_ACTIONS, "elasticache")
        )
        bucket = props.backups.bucket
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="WriteBackups",
                actions=["s3:PutObject", "s3:GetObject"],
                resources=[
                    bucket.arn_for_objects("manifests/*"),
                    bucket.arn_for_objects("exports/*"),
                    bucket.arn_for_objects(f"{group}-*"),
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListBackups",
                actions=["s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketAcl"],
                resources=[bucket.bucket_arn],
            )
        )
        role.add_to_principal_policy(
            self._key_statement(
                "EncryptBackups", props.backups.key, ("kms:GenerateDataKey", "kms:Decrypt"), "s3"
            )
        )
        copy_arn = props.backups.copy_bucket_arn
        if copy_arn:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="CopyBackupsCrossRegion",
                    actions=["s3:PutObject", "s3:GetObject"],
                    resources=[f"{copy_arn}/manifests/*", f"{copy_arn}/{group}-*"],
                )
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(sid="ListCopyBucket", actions=["s3:ListBucket"], resources=[copy_arn])
            )

    def _grant_cost_check(self, role: iam.IRole) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(sid="ReadCosts", actions=["ce:GetCostAndUsage"], resources=["*"])
        )

    def _grant_drill(self, role: iam.IRole, group: str) -> None:
        props = self._props
        env = props.config.environment
        temporary = names.temporary_group_prefix(env)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DescribeLiveGroupAndSnapshots",
                actions=["elasticache:DescribeReplicationGroups", "elasticache:DescribeSnapshots"],
                resources=[
                    self._cache_arn("replicationgroup", group),
                    self._cache_arn("snapshot", f"{group}-*"),
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="RestoreIntoTemporaryGroups",
                actions=["elasticache:CreateReplicationGroup", "elasticache:AddTagsToResource"],
                resources=[
                    self._cache_arn("replicationgroup", f"{temporary}*"),
                    self._cache_arn("cluster", f"{temporary}*"),
                    self._cache_arn("snapshot", f"{group}-*"),
                    self._cache_arn("subnetgroup", props.cache_subnet_group_name),
                    # No parameter group is named: the engine's default one applies.
                    self._cache_arn("parametergroup", "default.*"),
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DrillTemporaryGroups",
                actions=[
                    "elasticache:DescribeReplicationGroups",
                    "elasticache:TestFailover",
                    "elasticache:DeleteReplicationGroup",
                ],
                resources=[
                    self._cache_arn("replicationgroup", f"{temporary}*"),
                    self._cache_arn("cluster", f"{temporary}*"),
                ],
            )
        )
        role.add_to_principal_policy(
            self._key_statement("EncryptTemporaryGroups", props.cache_key, CACHE_KEY_ACTIONS, "elasticache")
        )
        props.cache_auth_secret.grant_read(role)
        self._grant_manifest_read(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="RecordDrills",
                actions=["dynamodb:PutItem"],
                resources=[props.table.table_arn],
                # Only drill records (`drill#<id>`); the lock itself is written by the state machine.
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["drill#*"]}},
            )
        )
        role.add_to_principal_policy(
            self._key_statement("UseReleaseTableKey", props.table_key, TABLE_KEY_ACTIONS, "dynamodb")
        )

    def _grant_verify(self, role: iam.IRole) -> None:
        self._grant_manifest_read(role)

    def _grant_event_path_drill(self, role: iam.IRole) -> None:
        props = self._props
        targets = props.event_path
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DrillPreviewQueue",
                # Send the marked events, receive them without deleting (the forced failures).
                actions=["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:GetQueueAttributes"],
                resources=[targets.queue.queue_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DrillPreviewDeadLetterQueue",
                # Count the drill's events, redrive them (the move task reads and deletes on the
                # caller's behalf), delete this drill's own events on a failure path.
                actions=[
                    "sqs:ReceiveMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:StartMessageMoveTask",
                    "sqs:ListMessageMoveTasks",
                ],
                resources=[targets.dead_letter_queue.queue_arn],
            )
        )
        role.add_to_principal_policy(
            self._key_statement("UseQueueKey", props.messaging_key, MESSAGE_KEY_ACTIONS, "sqs")
        )
        mapping_arn = self._stack.format_arn(
            service="lambda",
            resource="event-source-mapping",
            resource_name=targets.mapping_id,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PauseAndResumePreviewMapping",
                actions=["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"],
                resources=[mapping_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadGreenSchema",
                actions=["lambda:GetFunctionConfiguration"],
                resources=[f"{targets.fanout_function.function_arn}:{names.GREEN_ALIAS}"],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="RecordDrills",
                actions=["dynamodb:PutItem"],
                resources=[props.table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["drill#*"]}},
            )
        )
        role.add_to_principal_policy(
            self._key_statement("UseReleaseTableKey", props.table_key, TABLE_KEY_ACTIONS, "dynamodb")
        )


def _label(key: str) -> str:
    return "".join(part.capitalize() for part in key.split("-"))
