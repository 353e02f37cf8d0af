"""Wires the release orchestration into the main stack from the constructs it already holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.canary import CANARY_STAGE
from infra.api_construct import PREVIEW_STAGE
from infra.orchestration.construct import ReleaseOrchestration, ReleaseOrchestrationProps
from infra.orchestration.grants import CANARY_DRAIN_METHODS

if TYPE_CHECKING:
    from infra.stacks.realtime_analytics_stack import RealtimeAnalyticsStack


def add_release_orchestration(stack: RealtimeAnalyticsStack) -> ReleaseOrchestration:
    return ReleaseOrchestration(
        stack,
        "Orchestration",
        props=ReleaseOrchestrationProps(
            config=stack.config,
            vpc=stack.network.vpc,
            subnets=stack.network.private_subnets,
            cache_client_security_group=stack.network.lambda_sg,
            endpoint_security_group=stack.network.endpoint_sg,
            logs_key=stack.keys.logs,
            messaging_key=stack.keys.messaging,
            service_functions=stack.service.functions,
            cache_environment=stack.cache.environment,
            cache_auth_secret=stack.cache.auth_secret,
            api_keys_secret=stack.secrets.api_keys,
            preview_events_queue=stack.messaging.preview_events_queue,
            # Synthetic checks connect like clients do: through CloudFront, which adds the origin header.
            preview_url=stack.edge.stage_url(PREVIEW_STAGE),
            monitoring=stack.monitoring,
            # The edge holds the canary share; the drain closes the canary stage's connections through
            # the origin domain's `@connections` (the management API is not behind CloudFront).
            canary_store_arn=stack.edge.canary_store_arn,
            canary_connections_endpoint=stack.api.connections_endpoint(CANARY_STAGE),
            canary_connections_arns=tuple(
                stack.api.connections_arn(CANARY_STAGE, method) for method in CANARY_DRAIN_METHODS
            ),
        ),
    )
