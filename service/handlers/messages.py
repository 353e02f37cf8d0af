"""subscribe / unsubscribe / ping / $default: answers go back through @connections.

Every answer, errors included, is posted to the connection (no route responses are
configured), so a client gets the same frames whichever route API Gateway selected.
"""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from service import models
from service.clients import connections as posting
from service.clients.cache import cache
from service.faults import inject_faults
from service.logic import connections, messages
from service.observability import MetricUnit, add_metric, log_metrics, logger, tracer
from service.settings import settings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@log_metrics
@inject_faults("messages")
@event_parser(model=models.MessageEvent)
def handler(event: models.MessageEvent, context: LambdaContext) -> dict[str, Any]:
    current = settings()
    request = event.request_context
    connection_id = request.connection_id
    endpoint = connections.callback_endpoint(
        models.callback_context(request), current.connections_endpoint_url
    )
    body: str | bytes | None = event.body
    if event.is_base64_encoded and isinstance(body, str):
        body = base64.b64decode(body)
    add_metric("MessagesIn", MetricUnit.Count, 1)
    frames = messages.handle(
        body,
        connection_id,
        cache(),
        endpoint=endpoint,
        principal=models.principal_of(request),
        max_subscriptions=current.max_subscriptions,
        schema=current.cache_schema_version,
        version=current.service_version,
    )
    for frame in frames:
        if isinstance(frame, models.ErrorFrame):
            logger.info("client message refused", extra={"connection_id": connection_id, "code": frame.code})
        outcome, reason = posting.post(endpoint, connection_id, models.encode_frame(frame))
        if outcome == "sent":
            add_metric("MessagesOut", MetricUnit.Count, 1)
        else:
            logger.info("reply not delivered", extra={"connection_id": connection_id, "reason": reason})
            if outcome == "gone":
                connections.unregister(cache(), connection_id)
            break
    return {"statusCode": 200}
