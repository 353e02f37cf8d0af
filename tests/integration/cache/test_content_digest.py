"""The warm tests compare namespaces by content: the comparison must ignore how the server
encodes a value and must see every change of content or expiry."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from tests.support.cache_dataset import digest, load, snapshot

# Size limits under which small values are stored compactly; 0 forces the general encoding.
COMPACT_LIMITS = ("hash-max-listpack-entries", "zset-max-listpack-entries", "set-max-intset-entries")


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    saved = {name: str(client.config_get(name)[name]) for name in COMPACT_LIMITS}
    yield client
    for name, value in saved.items():  # the server is shared by the whole session
        client.config_set(name, value)
    client.close()


def fill(client: redis.Redis, prefix: str) -> None:
    client.hset(f"{prefix}h", mapping={"f1": "a", "f2": "b", "f3": "c"})
    client.zadd(f"{prefix}z", {"m1": 0.5, "m2": 1.25, "m3": 3})
    client.sadd(f"{prefix}s", 1, 2, 3, 4)
    client.rpush(f"{prefix}l", "x", "y", "z")
    client.set(f"{prefix}str", "value")
    client.pexpireat(f"{prefix}h", 4_102_444_800_000)


def test_equal_content_in_other_encodings_compares_equal(r: redis.Redis) -> None:
    fill(r, "cache:v1:")
    for name in COMPACT_LIMITS:
        r.config_set(name, 0)
    fill(r, "cache:v2:")
    encodings = {
        suffix: (r.object("encoding", f"cache:v1:{suffix}"), r.object("encoding", f"cache:v2:{suffix}"))
        for suffix in ("h", "z", "s")
    }
    assert all(one != other for one, other in encodings.values()), encodings
    assert all(r.dump(f"cache:v1:{s}") != r.dump(f"cache:v2:{s}") for s in encodings)  # DUMP would differ
    assert digest(r, "cache:v2:") == digest(r, "cache:v1:")
    assert snapshot(r, "cache:v2:") == snapshot(r, "cache:v1:")


CHANGES: dict[str, Callable[[redis.Redis, str], object]] = {
    "string value": lambda c, p: c.set(f"{p}str", "valuf", keepttl=True),
    "list order": lambda c, p: c.lset(f"{p}l", 0, "y") and c.lset(f"{p}l", 1, "x"),
    "set member": lambda c, p: c.srem(f"{p}s", 4) and c.sadd(f"{p}s", 5),
    "hash value": lambda c, p: c.hset(f"{p}h", "f2", "B"),
    "hash field": lambda c, p: c.hdel(f"{p}h", "f3") and c.hset(f"{p}h", "f4", "c"),
    "zset score": lambda c, p: c.zadd(f"{p}z", {"m2": 1.2500001}),
    "expiry by 1 ms": lambda c, p: c.pexpireat(f"{p}h", 4_102_444_800_001),
    "expiry removed": lambda c, p: c.persist(f"{p}h"),
    "type, same members": lambda c, p: c.delete(f"{p}l") and c.sadd(f"{p}l", "x", "y", "z"),
    "key missing": lambda c, p: c.delete(f"{p}str"),
    "key renamed": lambda c, p: c.rename(f"{p}str", f"{p}str2"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_every_change_of_content_or_expiry_is_seen(r: redis.Redis, change: str) -> None:
    load(r, "cache:v1:", 200)
    fill(r, "cache:v1:")
    for key in r.scan_iter(match="cache:v1:*"):
        r.copy(key, b"cache:v2:" + key[len(b"cache:v1:") :])
    assert digest(r, "cache:v2:") == digest(r, "cache:v1:")
    assert snapshot(r, "cache:v2:") == snapshot(r, "cache:v1:")
    CHANGES[change](r, "cache:v2:")
    assert digest(r, "cache:v2:") != digest(r, "cache:v1:")
    assert snapshot(r, "cache:v2:") != snapshot(r, "cache:v1:")
