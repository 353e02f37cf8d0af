"""The backup manifest: what a snapshot held, so a restore can be checked against it.

A manifest records the key count per namespace and a deterministic sample of keys with a
digest of each value. The sample is chosen by a hash of the key name (crc32 modulo N), not by
SCAN order, so the restored copy samples the very same keys whatever its SCAN order. Values
are digested by type (sorted members for sets and hashes), so an equal value on a server with
another encoding or engine version digests the same.

The connection registry (`conn:*`, `chan:*`) changes every second and expires: it is counted
but never sampled, and verification does not hold it to the snapshot's counts.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import Counter
from collections.abc import Iterable
from typing import Any

import redis

MANIFEST_VERSION = 1
# Namespaces that are live state rather than data: counted, not sampled, not verified.
VOLATILE_NAMESPACES = frozenset({"conn", "chan"})
DEFAULT_SAMPLE_MODULUS = 64
DEFAULT_SAMPLE_LIMIT = 2000
SCAN_COUNT = 1000


def namespace_of(key: str) -> str:
    """`cache:v3:snap:x` -> `cache:v3`; `cache:dryrun:r1:x` -> `cache:dryrun`; `conn:abc` -> `conn`."""
    parts = key.split(":")
    if parts[0] == "cache" and len(parts) > 2:
        return ":".join(parts[:2])
    return parts[0] if len(parts) > 1 else "(none)"


def in_sample(key: str, modulus: int) -> bool:
    return zlib.crc32(key.encode()) % modulus == 0


def _canonical(kind: str, value: Any) -> bytes:
    if kind == "string":
        return bytes(value or b"")
    if kind == "hash":
        return b"\x00".join(k + b"=" + v for k, v in sorted((value or {}).items()))
    if kind == "set":
        return b"\x00".join(sorted(value or []))
    if kind == "zset":
        return b"\x00".join(m + b"=" + repr(s).encode() for m, s in sorted(value or []))
    if kind == "list":
        return b"\x00".join(value or [])
    # Streams and module types: DUMP's serialized form (same engine family on both sides).
    return bytes(value or b"")


def digest_values(client: redis.Redis, keys: list[str]) -> dict[str, str]:
    """sha256 of each key's canonical value, `missing` for keys that do not exist."""
    if not keys:
        return {}
    types = client.pipeline(transaction=False)
    for key in keys:
        types.type(key)
    kinds = [k.decode() if isinstance(k, bytes) else str(k) for k in types.execute()]
    reads = client.pipeline(transaction=False)
    for key, kind in zip(keys, kinds, strict=True):
        if kind == "string":
            reads.get(key)
        elif kind == "hash":
            reads.hgetall(key)
        elif kind == "set":
            reads.smembers(key)
        elif kind == "zset":
            reads.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            reads.lrange(key, 0, -1)
        else:
            reads.dump(key)
    values = reads.execute()
    digests: dict[str, str] = {}
    for key, kind, value in zip(keys, kinds, values, strict=True):
        if kind == "none":
            digests[key] = "missing"
        else:
            digests[key] = f"{kind}:{hashlib.sha256(_canonical(kind, value)).hexdigest()}"
    return digests


def sample_checksum(sample: dict[str, str]) -> str:
    joined = "\n".join(f"{key}\x00{digest}" for key, digest in sorted(sample.items()))
    return hashlib.sha256(joined.encode()).hexdigest()


def _scan(client: redis.Redis) -> Iterable[str]:
    for raw in client.scan_iter(count=SCAN_COUNT):
        yield raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else str(raw)


def build_manifest(
    client: redis.Redis, *, modulus: int = DEFAULT_SAMPLE_MODULUS, limit: int = DEFAULT_SAMPLE_LIMIT
) -> dict[str, Any]:
    """Count keys per namespace and digest a hash-chosen sample of the stable ones."""
    counts: Counter[str] = Counter()
    chosen: list[str] = []
    for key in _scan(client):
        namespace = namespace_of(key)
        counts[namespace] += 1
        if namespace not in VOLATILE_NAMESPACES and len(chosen) < limit and in_sample(key, modulus):
            chosen.append(key)
    sample: dict[str, str] = {}
    for start in range(0, len(chosen), 500):
        sample.update(digest_values(client, chosen[start : start + 500]))
    # A key that expired between SCAN and read is not part of what the snapshot can promise.
    sample = {k: v for k, v in sample.items() if v != "missing"}
    return {
        "manifest_version": MANIFEST_VERSION,
        "key_counts": dict(sorted(counts.items())),
        "total_keys": sum(counts.values()),
        "sample_modulus": modulus,
        "sample": sample,
        "sample_checksum": sample_checksum(sample),
    }


def verify_manifest(
    client: redis.Redis,
    manifest: dict[str, Any],
    *,
    count_tolerance: float = 0.02,
    min_sample_match: float = 0.99,
) -> dict[str, Any]:
    """Compare a (restored) server with a manifest; `passed` plus the evidence.

    Counts of stable namespaces may differ by `count_tolerance` (writes between the manifest and
    the snapshot); at least `min_sample_match` of the sampled keys must digest identically.
    """
    counts: Counter[str] = Counter(namespace_of(key) for key in _scan(client))
    expected: dict[str, int] = dict(manifest.get("key_counts", {}))
    mismatched_counts: dict[str, dict[str, int]] = {}
    for namespace, want in expected.items():
        if namespace in VOLATILE_NAMESPACES:
            continue
        got = counts.get(namespace, 0)
        if abs(got - want) > max(1, int(want * count_tolerance)):
            mismatched_counts[namespace] = {"expected": want, "restored": got}
    sample: dict[str, str] = dict(manifest.get("sample", {}))
    keys = sorted(sample)
    restored: dict[str, str] = {}
    for start in range(0, len(keys), 500):
        restored.update(digest_values(client, keys[start : start + 500]))
    matched = sum(1 for key in keys if restored.get(key) == sample[key])
    missing = sum(1 for key in keys if restored.get(key) == "missing")
    match_rate = matched / len(keys) if keys else 1.0
    checksum_equal = sample_checksum({k: v for k, v in restored.items()}) == manifest.get("sample_checksum")
    passed = not mismatched_counts and match_rate >= min_sample_match
    return {
        "passed": passed,
        "restored_keys": sum(counts.values()),
        "expected_keys": int(manifest.get("total_keys", 0)),
        "count_mismatches": mismatched_counts,
        "sample_size": len(keys),
        "sample_matched": matched,
        "sample_missing": missing,
        "sample_match_rate": round(match_rate, 6),
        "sample_checksum_equal": checksum_equal,
    }
