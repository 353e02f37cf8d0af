"""ElastiCache replication group (Valkey 8 by default, Redis 7 selectable).

Authentication: a Redis AUTH token generated into Secrets Manager, not RBAC. Every function of
the service is one identity with the same command needs, so RBAC's per-user ACLs would add a
user, a user group and a second secret without narrowing anything; AUTH works identically
for Valkey and Redis OSS, and ElastiCache's `AuthTokenUpdateStrategy=ROTATE` keeps the old and
new tokens valid together during a rotation. cdk-nag AwsSolutions-AEC6 requires AUTH; Control
Tower CT.ELASTICACHE.PR.8 requires RBAC for Redis 6+. With Valkey neither rule evaluates (both
key on `Engine == "redis"`), so the template tests assert the same properties themselves; with
the Redis engine PR.8 is acknowledged in infra/nag_acknowledgments.py.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig
from infra.network_construct import NetworkConstruct
from infra.retention import retention


class CacheConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: NetworkConstruct,
        cache_key: kms.IKey,
        secrets_key: kms.IKey,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        env = config.environment
        cache = config.cache
        self.port = cache.port
        self.auth_secret = secretsmanager.Secret(
            self,
            "AuthToken",
            secret_name=names.secret_name(env, "cache-auth"),
            description=f"{env} cache AUTH token (JSON field '{names.REDIS_AUTH_SECRET_FIELD}')",
            encryption_key=secrets_key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",  # noqa: S106 - empty JSON template, the token is generated
                generate_string_key=names.REDIS_AUTH_SECRET_FIELD,
                # AUTH tokens allow 16-128 printable characters except @, " and /.
                exclude_punctuation=True,
                password_length=64,
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "SubnetGroup",
            cache_subnet_group_name=f"{names.prefix(env)}-cache",
            description=f"{env} cache: isolated subnets only",
            subnet_ids=network.vpc.select_subnets(subnet_group_name="cache").subnet_ids,
        )
        parameters = elasticache.CfnParameterGroup(
            self,
            "Parameters",
            cache_parameter_group_family=cache.parameter_family,
            description=f"{env} realtime analytics cache parameters",
            properties={"maxmemory-policy": cache.maxmemory_policy},
        )
        slow_log = logs.LogGroup(
            self,
            "SlowLog",
            # The vendedlogs prefix keeps the delivery resource policy small (AWS guidance).
            log_group_name=f"/aws/vendedlogs/elasticache/{names.prefix(env)}/slow-log",
            retention=retention(config.log_retention_days),
            encryption_key=logs_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        zones = list(config.network.availability_zones)
        nodes = cache.replicas + 1
        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_id=names.cache_replication_group_id(env),
            replication_group_description=f"{env} realtime analytics connection registry and release cache",
            engine=cache.engine,
            engine_version=cache.engine_version,
            cache_node_type=cache.node_type,
            num_node_groups=1,
            replicas_per_node_group=cache.replicas,
            # Primary and replicas spread over the configured zones.
            preferred_cache_cluster_a_zs=[zones[i % len(zones)] for i in range(nodes)],
            multi_az_enabled=True,
            automatic_failover_enabled=True,
            at_rest_encryption_enabled=True,
            kms_key_id=cache_key.key_arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=self.auth_secret.secret_value_from_json(names.REDIS_AUTH_SECRET_FIELD).unsafe_unwrap(),
            port=cache.port,
            cache_subnet_group_name=subnet_group.ref,
            cache_parameter_group_name=parameters.ref,
            security_group_ids=[network.cache_sg.security_group_id],
            snapshot_retention_limit=cache.snapshot_retention_days,
            snapshot_window=cache.snapshot_window,
            preferred_maintenance_window=cache.maintenance_window,
            auto_minor_version_upgrade=True,
            log_delivery_configurations=[
                elasticache.CfnReplicationGroup.LogDeliveryConfigurationRequestProperty(
                    destination_type="cloudwatch-logs",
                    log_format="json",
                    log_type="slow-log",
                    destination_details=elasticache.CfnReplicationGroup.DestinationDetailsProperty(
                        cloud_watch_logs_details=elasticache.CfnReplicationGroup.CloudWatchLogsDestinationDetailsProperty(
                            log_group=slow_log.log_group_name
                        )
                    ),
                )
            ],
        )
        self.replication_group.apply_removal_policy(RemovalPolicy.SNAPSHOT)
        self.arn = Stack.of(self).format_arn(
            service="elasticache",
            resource="replicationgroup",
            resource_name=names.cache_replication_group_id(env),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    @property
    def host(self) -> str:
        return self.replication_group.attr_primary_end_point_address

    @property
    def environment(self) -> dict[str, str]:
        """The variables service/redis_client.py reads (REDIS_HOST/PORT/TLS/AUTH_SECRET_ARN)."""
        return {
            "REDIS_HOST": self.host,
            "REDIS_PORT": str(self.port),
            "REDIS_TLS": "true",
            "REDIS_AUTH_SECRET_ARN": self.auth_secret.secret_arn,
        }
