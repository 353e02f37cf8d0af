"""REQUEST authorizer on $connect (see service.logic.authorizer)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from service.faults import inject_faults
from service.logic.authorizer import decide, policy
from service.models import AuthorizerEvent
from service.observability import log_metrics, logger, tracer
from service.settings import SettingsError, settings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@log_metrics
@inject_faults("authorizer")
@event_parser(model=AuthorizerEvent)
def handler(event: AuthorizerEvent, context: LambdaContext) -> dict[str, Any]:
    current = settings()
    if not current.api_keys_secret_arn:
        raise SettingsError("API_KEYS_SECRET_ARN is not set; the authorizer cannot check keys")
    request = event.request_context
    where = {
        "connection_id": request.connection_id,
        "source_ip": str(request.identity.source_ip.network_address),
        "stage": request.stage,
    }
    decision = decide(
        event.request(),
        current.api_keys_secret_arn,
        current.origin_secret_arn,
        current.secret_cache_seconds,
    )
    if decision.allowed:
        logger.info(
            "connection allowed",
            extra={**where, "principal": decision.principal_id, "reason": decision.reason},
        )
    else:
        logger.warning(
            "connection denied",
            extra={**where, "principal": decision.principal_id, "reason": decision.reason},
        )
    return policy(decision, event.method_arn)
