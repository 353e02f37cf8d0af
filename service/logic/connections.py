"""The connection registry in Redis (shared by blue and green; see service.keys).

`conn:<id>` hash: endpoint, principal, connected_at, and one `sub:<channel>` field per
subscription; TTL just over API Gateway's 2 h connection maximum. `chan:<channel>` set of
connection ids. Every operation is idempotent (API Gateway may deliver $connect/$disconnect
more than once, and a fan-out may race a disconnect). The subscription limit is enforced by
a script on the connection's own key, so concurrent subscribes cannot exceed it; scripts
touch one key each, so the layout also works on a cluster-mode cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import redis

from service import keys

SubscribeResult = Literal["subscribed", "already_subscribed", "limit_reached", "unknown_connection"]

_SUBSCRIBE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local count = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, string.len(ARGV[3])) == ARGV[3] then count = count + 1 end
end
if count >= tonumber(ARGV[2]) then return -2 end
redis.call('HSET', KEYS[1], ARGV[1], '1')
return 1
"""
_SUBSCRIBE_CODES: dict[int, SubscribeResult] = {
    1: "subscribed",
    0: "already_subscribed",
    -1: "unknown_connection",
    -2: "limit_reached",
}


def callback_endpoint(request_context: Mapping[str, Any], override: str | None) -> str:
    """Where fan-out posts for this connection: the stage the client connected through."""
    if override:
        return override.rstrip("/")
    return f"https://{request_context['domainName']}/{request_context['stage']}"


def register(r: redis.Redis, connection_id: str, endpoint: str, principal: str, connected_at: int) -> None:
    key = keys.conn_key(connection_id)
    pipe = r.pipeline(transaction=True)
    pipe.hset(key, mapping={"endpoint": endpoint, "principal": principal, "connected_at": str(connected_at)})
    pipe.expire(key, keys.CONNECTION_TTL_SECONDS)
    pipe.execute()


def channels_of(r: redis.Redis, connection_id: str) -> list[str]:
    prefix = keys.SUBSCRIPTION_FIELD_PREFIX
    fields: Iterable[bytes] = r.hkeys(keys.conn_key(connection_id))  # type: ignore[assignment]
    return [f.decode()[len(prefix) :] for f in fields if f.decode().startswith(prefix)]


def unregister(r: redis.Redis, connection_id: str) -> list[str]:
    """Remove a connection and all of its subscriptions; returns the channels it had."""
    channels = channels_of(r, connection_id)
    pipe = r.pipeline(transaction=False)
    for channel in channels:
        pipe.srem(keys.chan_key(channel), connection_id)
    pipe.delete(keys.conn_key(connection_id))
    pipe.execute()
    return channels


def subscribe(r: redis.Redis, connection_id: str, channel: str, limit: int) -> SubscribeResult:
    code = int(
        r.eval(
            _SUBSCRIBE_LUA,
            1,
            keys.conn_key(connection_id),
            keys.subscription_field(channel),
            str(limit),
            keys.SUBSCRIPTION_FIELD_PREFIX,
        )
    )
    result = _SUBSCRIBE_CODES[code]
    if result in ("subscribed", "already_subscribed"):
        # Also on a repeat: heals a set entry lost to a crash between the two writes.
        r.sadd(keys.chan_key(channel), connection_id)
    return result


def unsubscribe(r: redis.Redis, connection_id: str, channel: str) -> bool:
    """True when the connection was subscribed."""
    pipe = r.pipeline(transaction=False)
    pipe.hdel(keys.conn_key(connection_id), keys.subscription_field(channel))
    pipe.srem(keys.chan_key(channel), connection_id)
    removed, _ = pipe.execute()
    return bool(removed)


def subscribers(r: redis.Redis, channel: str) -> dict[str, str]:
    """Connection id -> callback endpoint of the channel's live subscribers.

    Ids whose registry entry expired (a missed $disconnect) are removed from the set here.
    """
    members = [m.decode() for m in r.smembers(keys.chan_key(channel))]  # type: ignore[union-attr]
    if not members:
        return {}
    pipe = r.pipeline(transaction=False)
    for connection_id in members:
        pipe.hget(keys.conn_key(connection_id), "endpoint")
    endpoints = pipe.execute()
    live: dict[str, str] = {}
    stale: list[str] = []
    for connection_id, endpoint in zip(members, endpoints, strict=True):
        if endpoint is None:
            stale.append(connection_id)
        else:
            live[connection_id] = endpoint.decode()
    if stale:
        r.srem(keys.chan_key(channel), *stale)
    return live


def members(r: redis.Redis, channel: str) -> list[str]:
    """The channel's subscriber ids, sorted (the stable order a split slices)."""
    return sorted(m.decode() for m in r.smembers(keys.chan_key(channel)))  # type: ignore[union-attr]


def live_subscribers(r: redis.Redis, channel: str, connection_ids: list[str]) -> dict[str, str]:
    """Connection id -> callback endpoint for those of `connection_ids` still subscribed to `channel`.

    A delivery shard lists ids taken when its event was split: ids that unsubscribed or
    disconnected since are skipped, ids whose registry entry expired are removed from the set
    (as `subscribers` does), and an id that was never a subscriber is never posted to.
    """
    if not connection_ids:
        return {}
    chan = keys.chan_key(channel)
    pipe = r.pipeline(transaction=False)
    pipe.smismember(chan, connection_ids)
    for connection_id in connection_ids:
        pipe.hget(keys.conn_key(connection_id), "endpoint")
    subscribed, *endpoints = pipe.execute()
    live: dict[str, str] = {}
    stale: list[str] = []
    for connection_id, member, endpoint in zip(connection_ids, subscribed, endpoints, strict=True):
        if not member:
            continue
        if endpoint is None:
            stale.append(connection_id)
        else:
            live[connection_id] = endpoint.decode()
    if stale:
        r.srem(chan, *stale)
    return live
