"""A mixed-type cache namespace for warm tests and benchmarks, and a way to compare two."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis

TYPES = ("string", "hash", "list", "set", "zset")


# Builds keys [first, last) inside the server (fast even for a million keys): the type cycles
# through TYPES, sizes vary, and two keys in three get a TTL between 100 and 100,000 s.
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
  if i % 3 ~= 0 then redis.call('EXPIRE', key, math.random(100, 100000)) end
end
return last - first
"""

# One pass over a namespace: key count, keys with an expiry, and an order-independent checksum
# (sum of the first 32 bits of SHA1(suffix, DUMP payload, PEXPIRETIME)) computed in the server.
_DIGEST = """
local cursor, pattern, n = ARGV[1], ARGV[2], #ARGV[3]
local count, expiring, sum = 0, 0, 0
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
  cursor = reply[1]
  for _, key in ipairs(reply[2]) do
    local expiry = redis.call('PEXPIRETIME', key)
    local digest = redis.sha1hex(string.sub(key, n + 1) .. '\0' .. redis.call('DUMP', key) .. '\0' .. expiry)
    sum = (sum + tonumber(string.sub(digest, 1, 8), 16)) % 4294967296
    count = count + 1
    if expiry > 0 then expiring = expiring + 1 end
  end
until cursor == '0' or count >= 20000
return {cursor, count, expiring, sum}
"""


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
    """Count and checksum of a namespace; identical namespaces (content, type, encoding and
    absolute expiry of every key) have identical digests."""
    script = client.register_script(_DIGEST)
    pattern = prefix.replace("*", "\\*") + "*"
    cursor, count, expiring, checksum = "0", 0, 0, 0
    while True:
        reply = script(args=[cursor, pattern, prefix])
        cursor = reply[0].decode()
        count, expiring = count + int(reply[1]), expiring + int(reply[2])
        checksum = (checksum + int(reply[3])) % 2**32
        if cursor == "0":
            return Digest(count, expiring, checksum)


@dataclass(frozen=True)
class Snapshot:
    """Every key of a namespace: DUMP payload (type, encoding and content) and absolute expiry.

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


def snapshot(client: redis.Redis, prefix: str, *, chunk: int = 2000) -> Snapshot:
    keys = list(client.scan_iter(match=f"{prefix}*", count=chunk))
    entries: dict[bytes, tuple[bytes, int]] = {}
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        pipe = client.pipeline(transaction=False)
        for key in part:
            pipe.dump(key)
            pipe.pexpiretime(key)
        replies = pipe.execute()
        for index, key in enumerate(part):
            entries[bytes(key)[len(prefix) :]] = (replies[2 * index], replies[2 * index + 1])
    return Snapshot(entries)


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
