"""Wires the release orchestration into the main stack from the constructs it already holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.api_construct import PREVIEW_STAGE
from infra.orchestration.construct import ReleaseOrchestration, ReleaseOrchestrationProps

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
        ),
    )
