"""$connect: register the connection and the endpoint fan-out must post to."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from service.clients.cache import cache
from service.faults import inject_faults
from service.logic import connections
from service.observability import MetricUnit, add_metric, log_metrics, logger, tracer
from service.settings import settings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@log_metrics
@inject_faults("connect")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event["requestContext"]
    connection_id = request["connectionId"]
    endpoint = connections.callback_endpoint(request, settings().connections_endpoint_url)
    principal = str((request.get("authorizer") or {}).get("principalId") or "anonymous")
    connected_at = int(request.get("connectedAt") or time.time() * 1000)
    connections.register(cache(), connection_id, endpoint, principal, connected_at)
    logger.info(
        "connected", extra={"connection_id": connection_id, "principal": principal, "endpoint": endpoint}
    )
    add_metric("ConnectionsOpened", MetricUnit.Count, 1)
    return {"statusCode": 200}
