"""A mixed-type cache namespace for warm tests and benchmarks, and ways to compare two by content."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

TYPES = ("string", "hash", "list", "set", "zset")


# Builds keys [first, last) inside the server (fast even for a million keys): the type cycles
# through TYPES, sizes vary, and two keys in three get a TTL between 3,600 and 100,000 s (at
# least an hour, so that no key expires during a test or a benchmark on a slow machine: the
# comparisons expect every key loaded to be there).
_LOAD = """
local prefix, first, last = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
math.randomseed(first)
for i = first, last - 1 do
  local key, kind, n = prefix .. 'k' .. i, i % 5, math.random(1, 6)
  if kind == 0 then
    redis.call('SET', key, 'value-' .. i .. '-' .. string.rep('x', math.random(0, 40)))
  else
    for j = 1, n do
      if kind == 1 then redis.call('HSET', key, 'f' .. j, i .. ':' .. j)
      elseif kind == 2 then redis.call('RPUSH', key, 'e' .. j)
      elseif kind == 3 then redis.call('SADD', key, 'm' .. j)
      else redis.call('ZADD', key, math.random(), 'z' .. j) end
    end
  end
  if i % 3 ~= 0 then redis.call('EXPIRE', key, math.random(3600, 100000)) end
end
return last - first
"""

# Compared by content, never by encoding: DUMP payloads differ for equal values (Redis 7.0
# rebuilds a hashtable set when it copies it, and DUMP then lists the same members in another
# order; the same value can be listpack or hashtable depending on history and configuration).
# Each key contributes SHA1(suffix, type, content, PEXPIRETIME): strings by value, lists in
# their order, sorted sets by (member, score) in ZRANGE order, sets and hashes by an
# order-independent sum of one SHA1 per member or per field/value pair (no sort in Lua: its
# string order follows the server's locale). Sums keep 52 bits of each SHA1, exact in Lua's
# doubles. Elements are length-prefixed, so no two contents share an encoding. Other types are
# refused rather than compared loosely.
_CONTENT = """
local sub, sha1 = string.sub, redis.sha1hex
local function lp(s) return #s .. ':' .. s end
local function ordered(items)
  local parts = {}
  for i, item in ipairs(items) do parts[i] = lp(item) end
  return sha1(table.concat(parts))
end
local function unordered(items, step)
  local sum = 0
  for i = 1, #items, step do
    local h = sha1(step == 2 and lp(items[i]) .. lp(items[i + 1]) or items[i])
    sum = (sum + tonumber(sub(h, 1, 13), 16)) % 4503599627370496
  end
  return string.format('%.0f/%d', sum, #items)
end
local function content(key)
  local kind = redis.call('TYPE', key).ok
  if kind == 'string' then return kind, sha1(redis.call('GET', key))
  elseif kind == 'list' then return kind, ordered(redis.call('LRANGE', key, 0, -1))
  elseif kind == 'zset' then return kind, ordered(redis.call('ZRANGE', key, 0, -1, 'WITHSCORES'))
  elseif kind == 'set' then return kind, unordered(redis.call('SMEMBERS', key), 1)
  elseif kind == 'hash' then return kind, unordered(redis.call('HGETALL', key), 2)
  elseif kind == 'none' then return nil
  end
  error('content digest: no comparison for type ' .. kind .. ' (key ' .. key .. ')')
end
"""

# One pass over a namespace: key count, keys with an expiry, and an order-independent checksum
# (52 bits of SHA1(suffix, type, content, PEXPIRETIME) summed over the keys) computed in the server.
_DIGEST = (
    _CONTENT
    + """
local cursor, pattern, n = ARGV[1], ARGV[2], #ARGV[3]
local count, expiring, sum = 0, 0, 0
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
  cursor = reply[1]
  for _, key in ipairs(reply[2]) do
    local kind, digest = content(key)
    if kind then  -- a key that expired since SCAN no longer exists: not counted
      local expiry = redis.call('PEXPIRETIME', key)
      local h = sha1(sub(key, n + 1) .. '\0' .. kind .. '\0' .. digest .. '\0' .. expiry)
      sum = (sum + tonumber(sub(h, 1, 13), 16)) % 4503599627370496
      count = count + 1
      if expiry > 0 then expiring = expiring + 1 end
    end
  end
until cursor == '0' or count >= 20000
return {cursor, count, expiring, string.format('%.0f', sum)}
"""
)


def load(client: redis.Redis, prefix: str, count: int, *, chunk: int = 20_000) -> None:
    """`count` keys under `prefix` (see _LOAD for their shape)."""
    script = client.register_script(_LOAD)
    for first in range(0, count, chunk):
        script(args=[prefix, first, min(first + chunk, count)])


@dataclass(frozen=True)
class Digest:
    count: int
    expiring: int
    checksum: int


def digest(client: redis.Redis, prefix: str) -> Digest:
    """Count and checksum of a namespace; namespaces with the same content (type, value,
    members, fields, scores and absolute expiry of every key, whatever the encodings) have
    identical digests."""
    script = client.register_script(_DIGEST)
    pattern = prefix.replace("*", "\\*") + "*"
    cursor, count, expiring, checksum = "0", 0, 0, 0
    while True:
        reply = script(args=[cursor, pattern, prefix])
        cursor = reply[0].decode()
        count, expiring = count + int(reply[1]), expiring + int(reply[2])
        checksum = (checksum + int(reply[3])) % 2**52
        if cursor == "0":
            return Digest(count, expiring, checksum)


@dataclass(frozen=True)
class Snapshot:
    """Every key of a namespace: its content (type and value, members, fields or scores, in a
    canonical encoding independent of the server's internal encoding) and absolute expiry.

    PEXPIRETIME (ms since the epoch, -1 without expiry) does not drift while a snapshot is
    taken, so two snapshots taken a second apart still compare exactly.
    """

    entries: dict[bytes, tuple[bytes, int]]

    @property
    def checksum(self) -> str:
        digest = hashlib.sha256()
        for suffix in sorted(self.entries):
            digest.update(suffix + b"\0" + self.entries[suffix][0] + b"\0")
        return digest.hexdigest()


def _length_prefixed(items: Iterable[bytes]) -> bytes:
    return b"".join(b"%d:%b" % (len(item), item) for item in items)


def _read_content(pipe: Any, key: bytes, kind: str) -> None:
    if kind == "string":
        pipe.get(key)
    elif kind == "list":
        pipe.lrange(key, 0, -1)
    elif kind == "zset":
        pipe.zrange(key, 0, -1, withscores=True, score_cast_func=bytes)  # scores as the server sent them
    elif kind == "set":
        pipe.smembers(key)
    elif kind == "hash":
        pipe.hgetall(key)
    else:
        raise AssertionError(f"no content comparison for type {kind!r} (key {key!r})")


def _canonical(kind: str, value: Any) -> bytes:
    """Lists and sorted sets keep their order (ZRANGE's: score, then member); sets and hashes
    are sorted byte-wise."""
    if kind == "string":
        items = [value]
    elif kind == "list":
        items = list(value)
    elif kind == "zset":
        items = [part for member, score in value for part in (member, score)]
    elif kind == "set":
        items = sorted(value)
    else:
        items = [part for field in sorted(value) for part in (field, value[field])]
    return kind.encode() + b"\0" + _length_prefixed(items)


def snapshot(client: redis.Redis, prefix: str, *, chunk: int = 2000) -> Snapshot:
    keys = list(client.scan_iter(match=f"{prefix}*", count=chunk))
    entries: dict[bytes, tuple[bytes, int]] = {}
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        pipe = client.pipeline(transaction=False)
        for key in part:
            pipe.type(key)
            pipe.pexpiretime(key)
        replies = pipe.execute()
        kinds = [_text(kind) for kind in replies[::2]]
        present = [
            (key, kind, expiry)
            for key, kind, expiry in zip(part, kinds, replies[1::2], strict=True)
            if kind != "none"
        ]
        pipe = client.pipeline(transaction=False)
        for key, kind, _ in present:
            _read_content(pipe, key, kind)
        for (key, kind, expiry), value in zip(present, pipe.execute(), strict=True):
            if value is not None:  # gone (expired) since TYPE: it no longer exists
                entries[bytes(key)[len(prefix) :]] = (_canonical(kind, value), expiry)
    return Snapshot(entries)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def assert_same(source: Snapshot, target: Snapshot, *, ttl_tolerance_ms: int = 1000) -> None:
    assert len(target.entries) == len(source.entries), (len(source.entries), len(target.entries))
    assert target.checksum == source.checksum
    for suffix, (payload, expiry) in source.entries.items():
        copied_payload, copied_expiry = target.entries[suffix]
        assert copied_payload == payload, suffix
        if expiry < 0:
            assert copied_expiry == expiry, (suffix, expiry, copied_expiry)
        else:
            assert abs(copied_expiry - expiry) <= ttl_tolerance_ms, (suffix, expiry, copied_expiry)
