"""$connect: register the connection and the endpoint fan-out must post to."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from service.clients.cache import cache
from service.faults import inject_faults
from service.logic import connections
from service.models import ConnectEvent, callback_context, principal_of
from service.observability import MetricUnit, add_metric, log_metrics, logger, tracer
from service.settings import settings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@log_metrics
@inject_faults("connect")
@event_parser(model=ConnectEvent)
def handler(event: ConnectEvent, context: LambdaContext) -> dict[str, Any]:
    request = event.request_context
    connection_id = request.connection_id
    endpoint = connections.callback_endpoint(callback_context(request), settings().connections_endpoint_url)
    principal = principal_of(request)
    connected_at = round(request.connected_at.timestamp() * 1000)
    connections.register(cache(), connection_id, endpoint, principal, connected_at)
    logger.info(
        "connected", extra={"connection_id": connection_id, "principal": principal, "endpoint": endpoint}
    )
    add_metric("ConnectionsOpened", MetricUnit.Count, 1)
    return {"statusCode": 200}
