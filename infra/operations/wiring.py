"""Wires the operations into the main stack from the constructs it already holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts import names
from infra.operations.construct import Operations, OperationsProps
from infra.operations.functions import EventPathTargets

if TYPE_CHECKING:
    from infra.stacks.realtime_analytics_stack import RealtimeAnalyticsStack


def add_operations(stack: RealtimeAnalyticsStack) -> Operations:
    orchestration = stack.orchestration
    return Operations(
        stack,
        "Operations",
        props=OperationsProps(
            config=stack.config,
            # The task bundle (tasks, service, orchestrator packages) the release tasks run from.
            code=orchestration.code,
            vpc=stack.network.vpc,
            subnets=stack.network.private_subnets,
            cache_client_security_group=stack.network.lambda_sg,
            endpoint_security_group=stack.network.endpoint_sg,
            logs_key=stack.keys.logs,
            cache_key=stack.keys.cache,
            messaging_key=stack.keys.messaging,
            cache_environment=stack.cache.environment,
            cache_auth_secret=stack.cache.auth_secret,
            # The physical name infra/cache_construct.py gives the subnet group.
            cache_subnet_group_name=f"{names.prefix(stack.config.environment)}-cache",
            cache_security_group=stack.network.cache_sg,
            operations_topic=stack.messaging.operations_topic,
            table=orchestration.table,
            table_key=orchestration.release_table.key,
            monitoring=stack.monitoring,
            event_path=_event_path(stack),
        ),
    )


def _event_path(stack: RealtimeAnalyticsStack) -> EventPathTargets:
    """preview-events, its DLQ, and the mapping that `add_event_source` created under fanout's green alias."""
    from aws_cdk import aws_lambda as lambda_

    green = stack.service.green["fanout"]
    [mapping] = [child for child in green.node.children if isinstance(child, lambda_.EventSourceMapping)]
    return EventPathTargets(
        queue=stack.messaging.preview_events_queue,
        dead_letter_queue=stack.messaging.dead_letter_queues["preview-events"],
        mapping_id=mapping.event_source_mapping_id,
        fanout_function=stack.service.functions["fanout"],
    )
