"""The backup bucket: exported snapshots (`<snapshot>-<n>.rdb`), manifests and export markers.

- SSE-KMS with its own customer-managed key (bucket key on: one data key per object batch,
  not a KMS call per object), versioning, TLS-only, public access blocked.
- Lifecycle: current versions to Standard-IA, then Glacier Instant Retrieval (manifests stay
  readable with a plain GetObject, which the DR drill does), then expire; noncurrent versions
  expire after 30 days; incomplete multipart uploads are aborted after a day.
- Object Lock default retention when configured (production): a deleted or overwritten backup
  keeps its locked version until the retention ends, whoever asks.
- ElastiCache's export (CopySnapshot with TargetBucket) writes as an AWS-owned identity. AWS's
  "Exporting a backup" page (docs.aws.amazon.com/AmazonElastiCache/latest/dg/backups-exporting.html)
  grants it, in Regions enabled by default, through the bucket ACL to ElastiCache's canonical
  user (List objects, Write objects, Read bucket permissions), which needs ACLs enabled on the
  bucket; in opt-in Regions through a bucket policy for `<region>.elasticache-snapshot.amazonaws.com`.
  CloudFormation sets no per-grantee ACL, so the same permissions are granted in the bucket
  policy to the canonical user (S3 bucket policies accept `CanonicalUser` principals), and
  object ownership is `BucketOwnerPreferred` so ElastiCache's objects become the account's.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig
from infra.kms_keys import customer_managed_key
from infra.scanner import checkov_skip

# ElastiCache's canonical user for snapshot exports in the Regions enabled by default (AWS page above).
ELASTICACHE_EXPORT_CANONICAL_USER = "540804c33a284a299d2547575ce1010f2312ef3da9b3a053c8bc45bf233e4353"
# Regions launched before opt-in Regions existed: these use the canonical-user grant.
DEFAULT_REGIONS = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "sa-east-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-central-1",
        "eu-north-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-south-1",
    }
)
EXPORT_BUCKET_ACTIONS = ("s3:ListBucket", "s3:GetBucketAcl", "s3:ListBucketMultipartUploads")
EXPORT_OBJECT_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts")
NONCURRENT_VERSION_DAYS = 30


def export_principal(region: str) -> iam.IPrincipal:
    if region in DEFAULT_REGIONS:
        return iam.CanonicalUserPrincipal(ELASTICACHE_EXPORT_CANONICAL_USER)
    return iam.ServicePrincipal(f"{region}.elasticache-snapshot.amazonaws.com")


class BackupBucket(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        env = config.environment
        backup = config.backup
        self.key = customer_managed_key(
            self,
            "Key",
            alias=names.kms_alias(env, "backups"),
            description=f"{env} realtime analytics: cache backups (exports, manifests) in S3",
        )
        lock = None
        if backup.object_lock_days is not None:
            days = Duration.days(backup.object_lock_days)
            lock = (
                s3.ObjectLockRetention.compliance(days)
                if backup.object_lock_mode == "COMPLIANCE"
                else s3.ObjectLockRetention.governance(days)
            )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=names.backup_bucket_name(env, config.account),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            versioned=True,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            object_lock_enabled=lock is not None,
            object_lock_default_retention=lock,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="cheaper-storage-then-expire",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(backup.infrequent_access_after_days),
                        ),
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=Duration.days(backup.glacier_instant_after_days),
                        ),
                    ],
                    expiration=Duration.days(backup.expire_after_days),
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        checkov_skip(
            self.bucket,
            "CKV_AWS_18",
            "the bucket's only readers and writers are three task roles and ElastiCache's exporter, all "
            "recorded in CloudTrail; server access logs would need a second bucket to protect (also "
            "acknowledged to cdk-nag S1 and the guard rule in infra/operations/acknowledgments.py)",
        )
        principal = export_principal(config.region)
        conditions = (
            {}
            if isinstance(principal, iam.CanonicalUserPrincipal)
            else {"StringEquals": {"aws:SourceAccount": config.account}}
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ElastiCacheExportBucket",
                principals=[principal],
                actions=list(EXPORT_BUCKET_ACTIONS),
                resources=[self.bucket.bucket_arn],
                conditions=conditions or None,
            )
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ElastiCacheExportObjects",
                principals=[principal],
                actions=list(EXPORT_OBJECT_ACTIONS),
                # Exports are named after this group's snapshots: `<group>-<date>-<n>.rdb`.
                resources=[self.bucket.arn_for_objects(f"{names.cache_replication_group_id(env)}-*")],
                conditions=conditions or None,
            )
        )
        self.copy_bucket_arn = f"arn:aws:s3:::{backup.copy_bucket_name}" if backup.copy_bucket_name else None
