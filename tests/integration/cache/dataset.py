"""A mixed-type cache namespace for warm tests and benchmarks, and a way to compare two."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import redis

TYPES = ("string", "hash", "list", "set", "zset")


def load(client: redis.Redis, prefix: str, count: int, *, seed: int = 7, chunk: int = 5000) -> None:
    """`count` keys under `prefix`, types in turn; two keys in three expire (TTL 100-100000 s)."""
    rng = random.Random(seed)
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        key = f"{prefix}k{i}"
        kind = TYPES[i % len(TYPES)]
        if kind == "string":
            pipe.set(key, f"value-{i}-" + "x" * rng.randint(0, 40))
        elif kind == "hash":
            pipe.hset(key, mapping={f"f{j}": f"{i}:{j}" for j in range(rng.randint(1, 6))})
        elif kind == "list":
            pipe.rpush(key, *[f"e{j}" for j in range(rng.randint(1, 6))])
        elif kind == "set":
            pipe.sadd(key, *[f"m{j}" for j in range(rng.randint(1, 6))])
        else:
            pipe.zadd(key, {f"z{j}": rng.random() for j in range(rng.randint(1, 6))})
        if i % 3:
            pipe.expire(key, rng.randint(100, 100_000))
        if i % chunk == chunk - 1:
            pipe.execute()
    pipe.execute()


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
