"""The service's released functions: one hardened Lambda per catalog entry, with aliases.

Releases own the functions' code after the first deploy. Each function gets one published
"bootstrap" version whose construct id carries `lambdas.bootstrap_version` from the
configuration, and both aliases (`live`, `green`) point at it. A later `cdk deploy` updates
only $LATEST (code or configuration); the version and alias resources are unchanged, so
CloudFormation leaves the aliases where the release state machine last put them (CloudFormation
does not correct drift). Bumping `bootstrap_version` on purpose publishes a new version and
moves both aliases to it.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from contracts import names
from infra.cache_construct import CacheConstruct
from infra.config import EnvironmentConfig
from infra.function_construct import HardenedFunction
from infra.messaging_construct import MessagingConstruct
from infra.network_construct import NetworkConstruct
from service.catalog import RELEASED_FUNCTIONS, ServiceFunction

# What each function may touch. Anything not listed is denied; unknown catalog keys get Redis
# only, so a new function starts from the narrowest useful role.
PERMISSIONS: dict[str, frozenset[str]] = {
    "authorizer": frozenset({"api-keys"}),
    "connect": frozenset({"redis"}),
    "disconnect": frozenset({"redis"}),
    "messages": frozenset({"redis", "connections"}),
    "fanout": frozenset({"redis", "connections", "alerts", "delivery-shards"}),
}
DEFAULT_PERMISSIONS = frozenset({"redis"})


class ServiceConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: NetworkConstruct,
        cache: CacheConstruct,
        messaging: MessagingConstruct,
        api_keys: secretsmanager.ISecret,
        code: lambda_.Code,
        logs_key: kms.IKey,
        base_environment: dict[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        self.live: dict[str, lambda_.Alias] = {}
        self.green: dict[str, lambda_.Alias] = {}
        self.bootstrap_versions: dict[str, lambda_.Version] = {}
        environment = {
            **base_environment,
            **cache.environment,
            "API_KEYS_SECRET_ARN": api_keys.secret_arn,
            "EVENTS_QUEUE_URL": messaging.events_queue.queue_url,
            "PREVIEW_EVENTS_QUEUE_URL": messaging.preview_events_queue.queue_url,
            "ALERTS_TOPIC_ARN": messaging.alerts_topic.topic_arn,
        }
        for entry in RELEASED_FUNCTIONS:
            hardened = self._function(entry, config, network, code, logs_key, environment)
            fn = hardened.function
            self.functions[entry.key] = fn
            self.roles[entry.key] = hardened.role
            self._grant(entry.key, hardened.role, cache, messaging, api_keys)
            if entry.key == "fanout":
                _add_sharding_environment(fn, config)
            version = lambda_.Version(
                self,
                f"{_label(entry.key)}BootstrapV{config.lambdas.bootstrap_version}",
                lambda_=fn,
                description=f"bootstrap {config.lambdas.bootstrap_version} (deployed by CDK; releases publish later ones)",
                removal_policy=RemovalPolicy.RETAIN,
            )
            self.bootstrap_versions[entry.key] = version
            self.live[entry.key] = self._live_alias(entry, version)
            self.green[entry.key] = lambda_.Alias(
                self, f"{_label(entry.key)}Green", alias_name=names.GREEN_ALIAS, version=version
            )
        fanout_settings: dict[str, Any] = dict(
            batch_size=config.messaging.batch_size,
            max_batching_window=Duration.seconds(config.messaging.max_batching_window_seconds),
            report_batch_item_failures=True,
        )
        if "fanout" in self.functions:
            self.live["fanout"].add_event_source(
                sources.SqsEventSource(messaging.events_queue, **fanout_settings)
            )
            self.green["fanout"].add_event_source(
                sources.SqsEventSource(messaging.preview_events_queue, **fanout_settings)
            )

    def _function(
        self,
        entry: ServiceFunction,
        config: EnvironmentConfig,
        network: NetworkConstruct,
        code: lambda_.Code,
        logs_key: kms.IKey,
        environment: dict[str, str],
    ) -> HardenedFunction:
        override = config.lambdas.functions.get(entry.key)
        reserved = (override or config.lambdas.defaults).reserved_concurrency
        return HardenedFunction(
            self,
            _label(entry.key),
            config=config,
            function_name=names.function_name(config.environment, entry.key),
            handler=entry.handler,
            description=entry.description,
            code=code,
            memory_mb=override.memory_mb if override else entry.memory_mb,
            timeout_seconds=override.timeout_seconds if override else entry.timeout_seconds,
            reserved_concurrency=reserved,
            environment={**environment, "POWERTOOLS_SERVICE_NAME": f"{names.SERVICE_NAME}-{entry.key}"},
            vpc=network.vpc,
            subnets=network.private_subnets,
            security_group=network.lambda_sg,
            logs_key=logs_key,
        )

    def _live_alias(self, entry: ServiceFunction, version: lambda_.Version) -> lambda_.Alias:
        pc = self._config.lambdas.provisioned_concurrency
        hot = pc is not None and entry.key in pc.functions
        alias = lambda_.Alias(
            self,
            f"{_label(entry.key)}Live",
            alias_name=names.LIVE_ALIAS,
            version=version,
            provisioned_concurrent_executions=pc.min_capacity if hot and pc else None,
        )
        if hot and pc:
            scaling = alias.add_auto_scaling(min_capacity=pc.min_capacity, max_capacity=pc.max_capacity)
            scaling.scale_on_utilization(utilization_target=pc.target_utilization)
        return alias

    def _grant(
        self,
        key: str,
        role: iam.Role,
        cache: CacheConstruct,
        messaging: MessagingConstruct,
        api_keys: secretsmanager.ISecret,
    ) -> None:
        needs = PERMISSIONS.get(key, DEFAULT_PERMISSIONS)
        if "redis" in needs:
            cache.auth_secret.grant_read(role)
        if "api-keys" in needs:
            # Current and previous versions: GetSecretValue with VersionStage on this secret only.
            api_keys.grant_read(role)
        if "alerts" in needs:
            messaging.alerts_topic.grant_publish(role)
        if "delivery-shards" in needs:
            # SendMessageBatch is authorized as sqs:SendMessage; on a queue encrypted with a customer
            # key the sender also needs GenerateDataKey and Decrypt on that key (SQS developer guide,
            # key management). Only the two queues the fan-out consumes.
            queues = (messaging.events_queue, messaging.preview_events_queue)
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="QueueDeliveryShards",
                    actions=["sqs:SendMessage"],
                    resources=[q.queue_arn for q in queues],
                )
            )
            # Both queues use the messaging key; the set keeps one ARN per distinct key.
            key_arns = sorted({q.encryption_master_key.key_arn for q in queues if q.encryption_master_key})
            if key_arns:
                role.add_to_policy(
                    iam.PolicyStatement(
                        sid="EncryptDeliveryShards",
                        actions=["kms:GenerateDataKey", "kms:Decrypt"],
                        resources=key_arns,
                    )
                )

    def use_origin_secret(self, secret: secretsmanager.ISecret) -> None:
        """Give the authorizer the CloudFront origin secret (ORIGIN_SECRET_ARN) to check."""
        authorizer = self.functions["authorizer"]
        authorizer.add_environment("ORIGIN_SECRET_ARN", secret.secret_arn)
        secret.grant_read(self.roles["authorizer"])


def _add_sharding_environment(fn: lambda_.Function, config: EnvironmentConfig) -> None:
    """The fan-out's delivery shards (service/logic/fanout.py): a channel with more subscribers than
    FANOUT_SPLIT_ABOVE is split into shards of FANOUT_SHARD_SIZE queued back onto its own queue."""
    messaging = config.messaging
    fn.add_environment("FANOUT_SHARD_SIZE", str(messaging.fanout_shard_size))
    # With a batching window Lambda holds a batch that is not full until the window closes: split
    # only channels whose queued shards fill at least one whole batch.
    batches = messaging.batch_size if messaging.max_batching_window_seconds else 1
    fn.add_environment("FANOUT_SPLIT_ABOVE", str(messaging.fanout_shard_size * batches))
    # Marks of split messages and delivered shards live as long as SQS may hand a message out again.
    fn.add_environment(
        "FANOUT_REDELIVERY_WINDOW_SECONDS",
        str(messaging.visibility_timeout_seconds * messaging.dlq_max_receive_count),
    )


def _label(key: str) -> str:
    return "".join(part.capitalize() for part in key.replace("-", "_").split("_"))
