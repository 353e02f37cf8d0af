"""$disconnect: forget the connection and its subscriptions (idempotent)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from service.clients.cache import cache
from service.faults import inject_faults
from service.logic import connections
from service.models import DisconnectEvent
from service.observability import MetricUnit, add_metric, log_metrics, logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@log_metrics
@inject_faults("disconnect")
@event_parser(model=DisconnectEvent)
def handler(event: DisconnectEvent, context: LambdaContext) -> dict[str, Any]:
    request = event.request_context
    connection_id = request.connection_id
    channels = connections.unregister(cache(), connection_id)
    logger.info(
        "disconnected",
        extra={
            "connection_id": connection_id,
            "channels": len(channels),
            "status_code": request.disconnect_status_code,
            "reason": request.disconnect_reason,
        },
    )
    add_metric("ConnectionsClosed", MetricUnit.Count, 1)
    return {"statusCode": 200}
