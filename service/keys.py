"""Redis key layout: the one place that names keys.

- Connection registry (unversioned: blue and green share it, a client connected through
  either stage is reachable by both fan-outs): `conn:<connectionId>` hash, `chan:<channel>` set.
- Release-warmed cache (versioned by cache schema, so green can be warmed beside blue):
  `cache:v<N>:` prefix; the latest event of a channel is `cache:v<N>:snap:<channel>`.
- Alert deduplication (unversioned: one alert per rule, channel and window whichever version
  evaluates it): `alert:<rule>:<channel>:<window>`.
- Fan-out shards (unversioned, short-lived: the queue's redelivery window): `fanout:split:<SQS
  message id>` holds shard 0 of a queue message whose event was split (the other shards are
  queued); `fanout:shards:<split id>` hash, one field per shard: a claim (expiry) or `done`.
"""

from __future__ import annotations

# API Gateway closes a WebSocket after 2 h at most; the registry outlives that by one minute
# so a connection never disappears from Redis while API Gateway still holds it.
CONNECTION_TTL_SECONDS = 7260
SUBSCRIPTION_FIELD_PREFIX = "sub:"


def conn_key(connection_id: str) -> str:
    return f"conn:{connection_id}"


def chan_key(channel: str) -> str:
    return f"chan:{channel}"


def subscription_field(channel: str) -> str:
    """Field of the connection hash that records one subscription."""
    return f"{SUBSCRIPTION_FIELD_PREFIX}{channel}"


def parse_schema(schema: int | str) -> int:
    try:
        value = int(str(schema).strip())
    except ValueError:
        raise ValueError(f"cache schema version must be a non-negative integer, got {schema!r}") from None
    if value < 0:
        raise ValueError(f"cache schema version must be a non-negative integer, got {schema!r}")
    return value


def cache_namespace(schema: int | str) -> str:
    """`cache:v<N>:` for the cache schema version N."""
    return f"cache:v{parse_schema(schema)}:"


def dry_run_namespace(release_id: str) -> str:
    """Scratch namespace that a dry-run cache warm writes to."""
    return f"cache:dryrun:{release_id}:"


def snapshot_key(schema: int | str, channel: str) -> str:
    return f"{cache_namespace(schema)}snap:{channel}"


def alert_dedup_key(rule_id: str, channel: str, window: int) -> str:
    return f"alert:{rule_id}:{channel}:{window}"


def split_mark_key(message_id: str) -> str:
    """Shard 0 of a queue message whose event was split, set once the other shards are queued."""
    return f"fanout:split:{message_id}"


def shard_marks_key(split_id: str) -> str:
    """Hash of one split's shards: field = shard index, value = claim expiry (Unix s) or `done`."""
    return f"fanout:shards:{split_id}"
