"""API Gateway WebSocket events as API Gateway sends them (the shapes of its documentation's samples)."""

from __future__ import annotations

from typing import Any

DOMAIN = "abc.execute-api.eu-west-1.amazonaws.com"
CONNECTED_AT = 1_700_000_000_000
METHOD_ARN = "arn:aws:execute-api:eu-west-1:123456789012:api/live/$connect"
HEADERS = {"Host": DOMAIN, "X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https"}


def request_context(
    connection_id: str, route: str, event_type: str, *, stage: str = "live", principal: str | None = "key-abc"
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "routeKey": route,
        "eventType": event_type,
        "extendedRequestId": "ext-1=",
        "requestTime": "14/Nov/2023:22:13:20 +0000",
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": CONNECTED_AT,
        "requestTimeEpoch": CONNECTED_AT + 5,
        "identity": {"sourceIp": "10.0.0.1", "userAgent": "synthetic"},
        "requestId": "req-1=",
        "domainName": DOMAIN,
        "connectionId": connection_id,
        "apiId": "abc",
    }
    if principal is not None:
        context["authorizer"] = {"principalId": principal, "integrationLatency": 12}
    return context


def connect_event(connection_id: str, **context: Any) -> dict[str, Any]:
    return {
        "headers": dict(HEADERS),
        "multiValueHeaders": {k: [v] for k, v in HEADERS.items()},
        "requestContext": request_context(connection_id, "$connect", "CONNECT", **context),
        "isBase64Encoded": False,
    }


def message_event(
    connection_id: str, body: str | None, route: str = "$default", *, base64: bool = False, **context: Any
) -> dict[str, Any]:
    ctx = request_context(connection_id, route, "MESSAGE", **context)
    ctx["messageId"] = "msg-1="
    return {"requestContext": ctx, "body": body, "isBase64Encoded": base64}


def disconnect_event(connection_id: str, status: int = 1000, reason: str = "bye") -> dict[str, Any]:
    ctx = request_context(connection_id, "$disconnect", "DISCONNECT")
    ctx.update(disconnectStatusCode=status, disconnectReason=reason)
    return {
        "headers": dict(HEADERS),
        "multiValueHeaders": {k: [v] for k, v in HEADERS.items()},
        "requestContext": ctx,
        "isBase64Encoded": False,
    }


def authorizer_event(
    headers: dict[str, str] | None = None, query: dict[str, str] | None = None, connection_id: str = "c1="
) -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": headers or {},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": query,
        "stageVariables": {"alias": "live"},
        "requestContext": request_context(connection_id, "$connect", "CONNECT", principal=None),
    }
