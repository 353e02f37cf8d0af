"""The service's Lambda functions: the one list that infra, the release and the sandbox read.

Released functions ship in lockstep from one artifact; each is a published version behind the
aliases `live` and `green`. The key rotation function is deployed with the stack but is not
part of a release (it never sits behind `live`/`green`), so it is listed separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Trigger = Literal["authorizer", "websocket-route", "sqs", "secrets-rotation"]


@dataclass(frozen=True)
class ServiceFunction:
    """One Lambda function of the service.

    key: stable short name (resource names, alias lookups, the sandbox's routing table).
    handler: dotted path of the Lambda handler inside the artifact.
    routes: WebSocket route keys integrated with this function (empty when not a route target).
    memory_mb / timeout_seconds: sizing hints for infra.
    hot_path: True when the function sits on a client's request or delivery path, so its
        errors and latency guard releases (alarms, provisioned concurrency decisions).
    trigger: what invokes it.
    """

    key: str
    handler: str
    description: str
    routes: tuple[str, ...]
    memory_mb: int
    timeout_seconds: int
    hot_path: bool
    trigger: Trigger


RELEASED_FUNCTIONS: tuple[ServiceFunction, ...] = (
    ServiceFunction(
        key="authorizer",
        handler="service.handlers.authorizer.handler",
        description="REQUEST authorizer on $connect: API key (current or previous) and origin header",
        routes=(),
        memory_mb=256,
        timeout_seconds=5,
        hot_path=True,
        trigger="authorizer",
    ),
    ServiceFunction(
        key="connect",
        handler="service.handlers.connect.handler",
        description="$connect: registers the connection and its callback endpoint in Redis",
        routes=("$connect",),
        memory_mb=256,
        timeout_seconds=5,
        hot_path=True,
        trigger="websocket-route",
    ),
    ServiceFunction(
        key="disconnect",
        handler="service.handlers.disconnect.handler",
        description="$disconnect: removes the connection and its subscriptions",
        routes=("$disconnect",),
        memory_mb=256,
        timeout_seconds=5,
        hot_path=False,
        trigger="websocket-route",
    ),
    ServiceFunction(
        key="messages",
        handler="service.handlers.messages.handler",
        description="Client messages: subscribe, unsubscribe, ping; anything else gets an error frame",
        routes=("subscribe", "unsubscribe", "ping", "$default"),
        memory_mb=256,
        timeout_seconds=10,
        hot_path=True,
        trigger="websocket-route",
    ),
    ServiceFunction(
        key="fanout",
        handler="service.handlers.fanout.handler",
        description="SQS consumer: stores channel snapshots, posts events to subscribers, publishes alerts",
        routes=(),
        memory_mb=512,
        timeout_seconds=30,
        hot_path=True,
        trigger="sqs",
    ),
)

ROTATION_FUNCTION = ServiceFunction(
    key="rotate_api_key",
    handler="service.handlers.rotate_api_key.handler",
    description="Secrets Manager rotation of the client API key (createSecret/setSecret/testSecret/finishSecret)",
    routes=(),
    memory_mb=256,
    timeout_seconds=30,
    hot_path=False,
    trigger="secrets-rotation",
)


def released_keys() -> tuple[str, ...]:
    return tuple(fn.key for fn in RELEASED_FUNCTIONS)


def by_key(key: str) -> ServiceFunction:
    for fn in (*RELEASED_FUNCTIONS, ROTATION_FUNCTION):
        if fn.key == key:
            return fn
    raise KeyError(
        f"no service function with key {key!r}; known: {', '.join(released_keys())}, rotate_api_key"
    )


def route_table() -> dict[str, str]:
    """WebSocket route key -> function key (what API Gateway's integrations express)."""
    return {route: fn.key for fn in RELEASED_FUNCTIONS for route in fn.routes}
