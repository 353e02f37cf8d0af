"""Shapes that cross the service's boundaries: client messages, server frames, queue events.

Channels are `<kind>:<name>`: kind one of CHANNEL_KINDS, name 1-64 characters of letters,
digits, `.`, `_`, `-` starting with a letter or digit; 80 characters at most in all.
Examples: `price:eth`, `tvl:uniswap-v3`, `volume:BTC-USD`, `synthetic:rel-42`.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Annotated, Any, Literal

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
