"""Secrets Manager rotation function of the client API key (see service.logic.rotation)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from service.clients import aws
from service.logic.rotation import RotationError, rotate
from service.observability import logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    try:
        step, secret_id, token = event["Step"], event["SecretId"], event["ClientRequestToken"]
    except KeyError as exc:
        raise RotationError(f"rotation event has no {exc.args[0]}") from None
    logger.append_keys(rotation_step=step, version_id=token)
    rotate(aws.client("secretsmanager"), step, secret_id, token)
