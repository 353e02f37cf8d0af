"""Wires the WebSocket API, the CloudFront edge and monitoring into the main stack.

One function, called by the stack after the service exists, so the stack stays a list of
constructs and this part's wiring (which values come from where) reads in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts import names
from infra.api_construct import (
    LIVE_STAGE,
    STAGE_ALIASES,
    ApiProps,
    ApiThrottle,
    WebSocketApiConstruct,
    origin_domain_name_for,
)
from infra.edge_construct import EdgeConstruct, EdgeProps
from infra.monitoring_construct import MonitoringConstruct, MonitoringProps, QueuePair
from infra.service_construct import DEFAULT_PERMISSIONS, PERMISSIONS

if TYPE_CHECKING:
    from infra.stacks.realtime_analytics_stack import RealtimeAnalyticsStack


def cache_node_ids(replication_group_id: str, replicas: int) -> list[str]:
    """Node ids of a one-shard replication group: `<group>-001` (primary) and one per replica."""
    return [f"{replication_group_id}-{index:03d}" for index in range(1, replicas + 2)]


def add_api_edge_and_monitoring(
    stack: RealtimeAnalyticsStack,
) -> tuple[WebSocketApiConstruct, EdgeConstruct, MonitoringConstruct]:
    config = stack.config
    env = config.environment
    domain = config.domain
    origin = origin_domain_name_for(domain.domain_name)
    api = WebSocketApiConstruct(
        stack,
        "Api",
        props=ApiProps(
            environment=env,
            functions=stack.service.functions,
            origin_domain_name=origin,
            regional_certificate_arn=domain.regional_certificate_arn,
            hosted_zone_id=domain.hosted_zone_id,
            hosted_zone_name=domain.hosted_zone_name,
            logs_key=stack.keys.logs,
            log_retention_days=config.log_retention_days,
            throttle={
                "live": ApiThrottle(config.api.live_rate_limit, config.api.live_burst_limit),
                "preview": ApiThrottle(config.api.preview_rate_limit, config.api.preview_burst_limit),
            },
            alias_dependencies=[*stack.service.live.values(), *stack.service.green.values()],
        ),
    )
    # The functions that post to clients (fan-out, messages) get `@connections` of this API's stages.
    for key, role in stack.service.roles.items():
        if "connections" in PERMISSIONS.get(key, DEFAULT_PERMISSIONS):
            api.grant_manage_connections(role)

    edge = EdgeConstruct(
        stack,
        "Edge",
        props=EdgeProps(
            environment=env,
            public_domain_name=domain.domain_name,
            origin_domain_name=origin,
            cloudfront_certificate_arn=domain.cloudfront_certificate_arn,
            hosted_zone_id=domain.hosted_zone_id,
            hosted_zone_name=domain.hosted_zone_name,
            secrets_key=stack.keys.secrets,
            logs_key=stack.keys.logs,
            access_log_retention_days=config.log_retention_days,
        ),
    )
    # The authorizer refuses a $connect whose x-origin-verify does not match this secret.
    stack.service.use_origin_secret(edge.origin_secret)

    messaging = stack.messaging
    monitoring = MonitoringConstruct(
        stack,
        "Monitoring",
        props=MonitoringProps(
            environment=env,
            functions=stack.service.functions,
            function_names={key: names.function_name(env, key) for key in stack.service.functions},
            queues={
                name: QueuePair(queue, messaging.dead_letter_queues[name])
                for name, queue in messaging.queues.items()
            },
            fanout_dead_letter_queue=messaging.dead_letter_queues["events"],
            topics=dict(messaging.topics),
            operations_topic=messaging.topics["operations"],
            cache_node_ids=cache_node_ids(names.cache_replication_group_id(env), config.cache.replicas),
            api_id=api.api_id,
            api_stages=list(STAGE_ALIASES),
            live_stage=LIVE_STAGE,
            alarms=config.alarms,
            release_guard_error_threshold=config.alarms.release_guard_errors,
            business_metric_services={key: f"{names.SERVICE_NAME}-{key}" for key in stack.service.functions},
        ),
    )
    return api, edge, monitoring
