"""`realtime-analytics-stack`: tags the environment and composes the service's constructs."""

from __future__ import annotations

from aws_cdk import Environment, Stack, Tags
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from contracts import names
from infra.bundling import build_bundle, pinned
from infra.cache_construct import CacheConstruct
from infra.config import EnvironmentConfig
from infra.edge_observability import add_api_edge_and_monitoring
from infra.keys_construct import KeysConstruct
from infra.messaging_construct import MessagingConstruct
from infra.network_construct import NetworkConstruct
from infra.operations.wiring import add_operations
from infra.orchestration.wiring import add_release_orchestration
from infra.secrets_construct import SecretsConstruct
from infra.service_construct import ServiceConstruct

# Third-party packages the service imports that the Powertools layer may not carry at the
# pinned versions (the layer's boto3 comes from the runtime).
SERVICE_REQUIREMENTS = (
    "redis",
    "pydantic",
    "pydantic_core",
    "annotated-types",
    "typing_extensions",
    "typing-inspection",
)


class RealtimeAnalyticsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(
            scope,
            construct_id,
            stack_name=names.stack_name(config.environment),
            description=f"Realtime analytics service ({config.environment}): network, cache, messaging, "
            "secrets and the released service functions",
            env=Environment(account=config.account, region=config.region),
            termination_protection=config.environment == "production",
        )
        self.config = config
        for key, value in {
            "Project": names.PROJECT,
            "Environment": config.environment,
            **config.tags,
        }.items():
            Tags.of(self).add(key, value)

        self.keys = KeysConstruct(self, "Keys", config=config)
        self.network = NetworkConstruct(self, "Network", config=config, key=self.keys.logs)
        self.cache = CacheConstruct(
            self,
            "Cache",
            config=config,
            network=self.network,
            cache_key=self.keys.cache,
            secrets_key=self.keys.secrets,
            logs_key=self.keys.logs,
        )
        self.messaging = MessagingConstruct(self, "Messaging", config=config, key=self.keys.messaging)

        bundle = build_bundle(
            names.SERVICE_PACKAGES,
            pinned(SERVICE_REQUIREMENTS),
            python_version=config.lambdas.python_runtime.removeprefix("python"),
        )
        self.service_code = lambda_.Code.from_asset(str(bundle), exclude=[".complete"])
        self.base_environment = {
            "POWERTOOLS_METRICS_NAMESPACE": names.METRICS_NAMESPACE,
            "LOG_LEVEL": config.log_level,
            "ENVIRONMENT": config.environment,
            # Per published version: releases set these when they deploy green.
            "CACHE_SCHEMA_VERSION": "1",
            "SERVICE_VERSION": f"bootstrap-{config.lambdas.bootstrap_version}",
            "FAULT_ERROR_RATE": "0",
            "FAULT_DELAY_MS": "0",
            "FAULT_DROP_RATE": "0",
        }
        self.secrets = SecretsConstruct(
            self,
            "Secrets",
            config=config,
            network=self.network,
            code=self.service_code,
            secrets_key=self.keys.secrets,
            logs_key=self.keys.logs,
            base_environment=self.base_environment,
        )
        self.service = ServiceConstruct(
            self,
            "Service",
            config=config,
            network=self.network,
            cache=self.cache,
            messaging=self.messaging,
            api_keys=self.secrets.api_keys,
            code=self.service_code,
            logs_key=self.keys.logs,
            base_environment=self.base_environment,
        )
        # WebSocket API, CloudFront edge and dashboards/alarms (infra/edge_observability.py).
        self.api, self.edge, self.monitoring = add_api_edge_and_monitoring(self)
        # Release table, release tasks, state machine and alarm rollback (infra/orchestration/).
        self.orchestration = add_release_orchestration(self)
        # Backups, cost checks, budgets and DR drills on schedules (infra/operations/).
        self.operations = add_operations(self)
