"""Client messages (subscribe / unsubscribe / ping / anything else) -> frames to send back.

Nothing a client sends can drop its connection: every problem becomes an `error` frame with a
code from service.models.ErrorCode and a message that names the field at fault.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from pydantic import ValidationError

from service import keys, models
from service.logic import connections
from service.observability import logger


def _request_id(raw: Any) -> str | None:
    if isinstance(raw, dict):
        value = raw.get("request_id")
        if isinstance(value, str) and 0 < len(value) <= models.REQUEST_ID_MAX_LENGTH:
            return value
    return None


def _error(code: models.ErrorCode, message: str, request_id: str | None) -> list[models.ServerFrame]:
    return [models.ErrorFrame(code=code, message=message, request_id=request_id)]


def _describe(exc: ValidationError) -> tuple[models.ErrorCode, str]:
    first = exc.errors()[0]
    # Skip the discriminator tag pydantic puts first in the location.
    loc = [str(p) for p in first["loc"] if p not in models.CLIENT_ACTIONS]
    field = ".".join(loc) or "message"
    if first["type"] == "extra_forbidden":
        return "invalid_message", f"field '{field}' is not allowed"
    if first["type"] == "missing":
        return "invalid_message", f"field '{field}' is required"
    if loc and loc[0] == "channel":
        message = str(first.get("ctx", {}).get("error") or first["msg"])
        return "invalid_channel", f"channel: {message}"
    return "invalid_message", f"{field}: {first['msg']}"


def parse(
    body: str | bytes | None,
) -> models.Subscribe | models.Unsubscribe | models.Ping | models.ErrorFrame:
    """The validated message, or the error frame that answers it."""
    try:
        raw = json.loads(body or "")
    except (ValueError, UnicodeDecodeError):
        return models.ErrorFrame(code="invalid_json", message="the message is not valid JSON")
    if not isinstance(raw, dict):
        return models.ErrorFrame(code="invalid_json", message="the message must be a JSON object")
    request_id = _request_id(raw)
    action = raw.get("action")
    if action not in models.CLIENT_ACTIONS:
        shown = json.dumps(action)[:40] if action is not None else "missing"
        return models.ErrorFrame(
            code="unknown_action",
            message=f"action {shown} is not one of: {', '.join(models.CLIENT_ACTIONS)}",
            request_id=request_id,
        )
    try:
        return models.CLIENT_MESSAGE.validate_python(raw)
    except ValidationError as exc:
        code, message = _describe(exc)
        return models.ErrorFrame(code=code, message=message, request_id=request_id)


def latest_snapshot(r: redis.Redis, schema: int, channel: str) -> models.Event | None:
    raw = r.get(keys.snapshot_key(schema, channel))
    if raw is None:
        return None
    try:
        return models.Event.model_validate_json(raw)
    except ValidationError:
        # A snapshot in another schema's shape must not break subscribing.
        logger.warning("unreadable snapshot skipped", extra={"channel": channel, "schema": schema})
        return None


def handle(
    body: str | bytes | None,
    connection_id: str,
    r: redis.Redis,
    *,
    endpoint: str,
    principal: str,
    max_subscriptions: int,
    schema: int,
    version: str | None = None,
) -> list[models.ServerFrame]:
    """Frames to send to the connection, in order."""
    message = parse(body)
    if isinstance(message, models.ErrorFrame):
        return [message]
    if isinstance(message, models.Ping):
        return [models.PongFrame(request_id=message.request_id, version=version)]
    if isinstance(message, models.Unsubscribe):
        connections.unsubscribe(r, connection_id, message.channel)
        return [models.UnsubscribedFrame(channel=message.channel, request_id=message.request_id)]
    result = connections.subscribe(r, connection_id, message.channel, max_subscriptions)
    if result == "unknown_connection":
        # The registry lost this connection (e.g. a cache failover) while API Gateway kept it.
        connections.register(r, connection_id, endpoint, principal, int(time.time() * 1000))
        result = connections.subscribe(r, connection_id, message.channel, max_subscriptions)
    if result == "limit_reached":
        return _error(
            "subscription_limit",
            f"this connection already has {max_subscriptions} subscriptions; unsubscribe first",
            message.request_id,
        )
    frames: list[models.ServerFrame] = [
        models.SubscribedFrame(channel=message.channel, request_id=message.request_id)
    ]
    snapshot = latest_snapshot(r, schema, message.channel)
    if snapshot is not None:
        frames.append(snapshot.snapshot_frame())
    return frames
