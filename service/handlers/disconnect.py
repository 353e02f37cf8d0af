"""$disconnect: forget the connection and its subscriptions (idempotent)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from service.clients.cache import cache
from service.faults import inject_faults
from service.logic import connections
from service.observability import MetricUnit, add_metric, log_metrics, logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@log_metrics
@inject_faults("disconnect")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event["requestContext"]
    connection_id = request["connectionId"]
    channels = connections.unregister(cache(), connection_id)
    logger.info(
        "disconnected",
        extra={
            "connection_id": connection_id,
            "channels": len(channels),
            "status_code": request.get("disconnectStatusCode"),
            "reason": request.get("disconnectReason"),
        },
    )
    add_metric("ConnectionsClosed", MetricUnit.Count, 1)
    return {"statusCode": 200}
