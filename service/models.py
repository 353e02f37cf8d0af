"""Shapes that cross the service's boundaries: client messages, server frames, queue events, and
the API Gateway WebSocket events the handlers parse (Powertools' parser models, extended).

Channels are `<kind>:<name>`: kind one of CHANNEL_KINDS, name 1-64 characters of letters,
digits, `.`, `_`, `-` starting with a letter or digit; 80 characters at most in all.
Examples: `price:eth`, `tvl:uniswap-v3`, `volume:BTC-USD`, `synthetic:rel-42`.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketConnectEventRequestContext,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketDisconnectEventRequestContext,
    APIGatewayWebSocketEventRequestContextBase,
    APIGatewayWebSocketMessageEventModel,
    APIGatewayWebSocketMessageEventRequestContext,
)
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

CHANNEL_KINDS: tuple[str, ...] = ("tvl", "price", "volume", "synthetic")
CHANNEL_MAX_LENGTH = 80
_CHANNEL_RE = re.compile(r"^(?P<kind>[a-z]+):(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,63})$")
REQUEST_ID_MAX_LENGTH = 64
# API Gateway's WebSocket message limit; a larger event can never be delivered.
MAX_MESSAGE_BYTES = 128 * 1024
# SQS's limit for one message and for the sum of one SendMessageBatch's messages (the limit every
# queue accepts; queues may be configured higher, never needed here).
MAX_QUEUE_MESSAGE_BYTES = 256 * 1024
# API Gateway connection ids are 16 characters; the registry accepts any id up to this length.
CONNECTION_ID_MAX_LENGTH = 128


def validate_channel(value: str) -> str:
    if len(value) > CHANNEL_MAX_LENGTH:
        raise ValueError(f"channel is longer than {CHANNEL_MAX_LENGTH} characters")
    match = _CHANNEL_RE.match(value)
    if not match:
        raise ValueError(
            "channel must look like '<kind>:<name>' (name: letters, digits, '.', '_', '-', 1-64 characters)"
        )
    if match["kind"] not in CHANNEL_KINDS:
        raise ValueError(
            f"unknown channel kind {match['kind']!r}; expected one of {', '.join(CHANNEL_KINDS)}"
        )
    return value


Channel = Annotated[str, AfterValidator(validate_channel)]
RequestId = Annotated[str, Field(min_length=1, max_length=REQUEST_ID_MAX_LENGTH)]


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    request_id: RequestId | None = None


class Subscribe(_ClientMessage):
    action: Literal["subscribe"]
    channel: Channel


class Unsubscribe(_ClientMessage):
    action: Literal["unsubscribe"]
    channel: Channel


class Ping(_ClientMessage):
    action: Literal["ping"]


ClientMessage = Annotated[Subscribe | Unsubscribe | Ping, Field(discriminator="action")]
CLIENT_MESSAGE = TypeAdapter(ClientMessage)
CLIENT_ACTIONS: tuple[str, ...] = ("subscribe", "unsubscribe", "ping")


# Error codes a client can receive in an `error` frame.
ErrorCode = Literal[
    "invalid_json",  # the frame is not a JSON object
    "unknown_action",  # `action` missing or not one of CLIENT_ACTIONS
    "invalid_message",  # fields missing, of the wrong type, or not allowed
    "invalid_channel",  # the channel name breaks the channel rules
    "subscription_limit",  # the connection already holds MAX_SUBSCRIPTIONS channels
    "message_too_large",  # the frame is over 128 KB
    "internal_error",  # the service failed; retrying is safe
]


class _Frame(BaseModel):
    model_config = ConfigDict(frozen=True)


class SubscribedFrame(_Frame):
    type: Literal["subscribed"] = "subscribed"
    channel: str
    request_id: str | None = None


class UnsubscribedFrame(_Frame):
    type: Literal["unsubscribed"] = "unsubscribed"
    channel: str
    request_id: str | None = None


class PongFrame(_Frame):
    type: Literal["pong"] = "pong"
    request_id: str | None = None
    ts: float = Field(default_factory=lambda: time.time() * 1000)
    # The service version that answered (SERVICE_VERSION): a client sees which release serves it.
    version: str | None = None


class EventFrame(_Frame):
    """An event delivered live; `event_type` is the event's own type (e.g. `price_update`)."""

    type: Literal["event"] = "event"
    id: str
    channel: str
    event_type: str
    payload: dict[str, Any]
    ts: float
    synthetic: bool = False


class SnapshotFrame(_Frame):
    """The channel's latest event, sent right after `subscribed` when one is cached."""

    type: Literal["snapshot"] = "snapshot"
    id: str
    channel: str
    event_type: str
    payload: dict[str, Any]
    ts: float
    synthetic: bool = False


class ErrorFrame(_Frame):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    request_id: str | None = None


ServerFrame = SubscribedFrame | UnsubscribedFrame | PongFrame | EventFrame | SnapshotFrame | ErrorFrame


class Event(BaseModel):
    """An analytics event as it travels on the events queue.

    ts: producer time in Unix epoch milliseconds (delivery latency is measured from it).
    synthetic: True for the release's synthetic-check events; they are delivered like any
        other event but never raise alerts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=128)
    channel: Channel
    type: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    payload: dict[str, Any]
    ts: float = Field(default_factory=lambda: time.time() * 1000, ge=0)
    synthetic: bool = False

    def frame(self) -> EventFrame:
        return EventFrame(
            id=self.id,
            channel=self.channel,
            event_type=self.type,
            payload=self.payload,
            ts=self.ts,
            synthetic=self.synthetic,
        )

    def snapshot_frame(self) -> SnapshotFrame:
        return SnapshotFrame(**self.frame().model_dump(exclude={"type"}))


def encode_frame(frame: ServerFrame) -> bytes:
    return frame.model_dump_json(exclude_none=True).encode()


ConnectionId = Annotated[str, Field(min_length=1, max_length=CONNECTION_ID_MAX_LENGTH)]
SHARD_KIND = "delivery-shard"  # the `kind` that tells a shard from an event on the queue


class DeliveryShard(BaseModel):
    """One slice of a split event's subscribers (service.logic.fanout).

    A fan-out that finds more subscribers than its split threshold stores the snapshot and raises
    the alerts once, slices the sorted subscriber ids, posts slice 0 itself and queues the others
    back onto the queue the event came from; whichever invocation receives a shard posts the event
    to that slice. `split_id` names one split of one queue message (its shards share it); `shard`
    is this slice's index among `shards`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["delivery-shard"] = "delivery-shard"
    split_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    shard: int = Field(ge=0)
    shards: int = Field(ge=1)
    event: Event
    connections: list[ConnectionId] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> DeliveryShard:
        if self.shard >= self.shards:
            raise ValueError(f"shard {self.shard} is not below shards ({self.shards})")
        if len(set(self.connections)) != len(self.connections):
            raise ValueError("connections: a connection is listed twice")
        return self


# -- API Gateway WebSocket events (what the handlers receive) -----------------------------------
#
# Powertools' parser models of the WebSocket events, extended with what a Lambda REQUEST
# authorizer adds (`requestContext.authorizer`) and the authorizer's own event, which Powertools
# does not model for WebSocket APIs.


class WebSocketAuthorizerContext(BaseModel):
    """`requestContext.authorizer`: the authorizer's principal and its context map."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    principal_id: str | None = Field(default=None, alias="principalId")


class ConnectRequestContext(APIGatewayWebSocketConnectEventRequestContext):
    authorizer: WebSocketAuthorizerContext | None = None


class MessageRequestContext(APIGatewayWebSocketMessageEventRequestContext):
    authorizer: WebSocketAuthorizerContext | None = None


class DisconnectRequestContext(APIGatewayWebSocketDisconnectEventRequestContext):
    authorizer: WebSocketAuthorizerContext | None = None
    # A connection that dropped without a close frame has no status code to report (Powertools
    # requires one; a $disconnect must never fail on it, or the registry keeps a dead connection).
    disconnect_status_code: int | None = Field(default=None, alias="disconnectStatusCode")  # type: ignore[assignment]
    disconnect_reason: str = Field(default="", alias="disconnectReason")


def principal_of(context: ConnectRequestContext | MessageRequestContext) -> str:
    """Who the authorizer let in (its principal id), or `anonymous` without an authorizer."""
    return str((context.authorizer.principal_id if context.authorizer else None) or "anonymous")


def callback_context(context: APIGatewayWebSocketEventRequestContextBase) -> dict[str, Any]:
    """The request context as API Gateway wrote it (the callback endpoint is read from it)."""
    return context.model_dump(by_alias=True, mode="json")


class ConnectEvent(APIGatewayWebSocketConnectEventModel):
    """`$connect`, after the authorizer allowed it."""

    request_context: ConnectRequestContext = Field(alias="requestContext")


class MessageEvent(APIGatewayWebSocketMessageEventModel):
    """A client message (subscribe, unsubscribe, ping, `$default`)."""

    request_context: MessageRequestContext = Field(alias="requestContext")
    body: str | None = None


class DisconnectEvent(APIGatewayWebSocketDisconnectEventModel):
    """`$disconnect`. API Gateway sends the handshake's headers; they are not needed to forget a connection."""

    headers: dict[str, str] = Field(default_factory=dict, alias="headers")
    multi_value_headers: dict[str, list[str]] = Field(default_factory=dict, alias="multiValueHeaders")
    request_context: DisconnectRequestContext = Field(alias="requestContext")
    is_base64_encoded: bool = Field(default=False, alias="isBase64Encoded")


class AuthorizerEvent(BaseModel):
    """The `$connect` REQUEST authorizer's event: the handshake's headers and query, the route's ARN."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    type: Literal["REQUEST"] = "REQUEST"
    method_arn: str = Field(alias="methodArn")
    headers: dict[str, str] | None = None
    multi_value_headers: dict[str, list[str]] | None = Field(default=None, alias="multiValueHeaders")
    query_string_parameters: dict[str, str] | None = Field(default=None, alias="queryStringParameters")
    stage_variables: dict[str, str] | None = Field(default=None, alias="stageVariables")
    request_context: APIGatewayWebSocketConnectEventRequestContext = Field(alias="requestContext")

    def request(self) -> dict[str, Any]:
        """The parts the authorizer's decision reads, as API Gateway names them."""
        return {"headers": self.headers, "queryStringParameters": self.query_string_parameters}


class RotationEvent(BaseModel):
    """What Secrets Manager sends a rotation function, once per step."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    step: str = Field(alias="Step")
    secret_id: str = Field(alias="SecretId")
    token: str = Field(alias="ClientRequestToken")
