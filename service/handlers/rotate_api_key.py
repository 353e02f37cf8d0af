"""Secrets Manager rotation function of the client API key (see service.logic.rotation)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from service.clients import aws
from service.logic.rotation import RotationError, rotate
from service.models import RotationEvent
from service.observability import logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    try:
        rotation = RotationEvent.model_validate(event)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, error["loc"])) or "event" for error in exc.errors())
        raise RotationError(f"rotation event has no valid {fields}") from None
    logger.append_keys(rotation_step=rotation.step, version_id=rotation.token)
    rotate(aws.client("secretsmanager"), rotation.step, rotation.secret_id, rotation.token)
