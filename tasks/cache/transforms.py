"""Value transforms applied while warming across a cache schema change.

A transform is registered for one (from, to) pair of cache schema versions. It reshapes the
string values whose key suffix (the part after `cache:v<N>:`) starts with `key_prefix`; every
other key is copied unchanged by the server. When no transform is registered for a pair, the
namespace is copied as it is: a schema bump then only isolates green's writes from blue's.

`apply` returns the new value, or None to leave the key out (a cache miss is always safe; a
value in the wrong shape is not).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Transform:
    key_prefix: bytes
    apply: Callable[[bytes, bytes], bytes | None]
    description: str


def snapshot_v1_to_v2(suffix: bytes, value: bytes) -> bytes | None:
    """Schema 1 snapshots hold the queue event as sent; schema 2 holds the frame's shape.

    v1: {"id", "channel", "type", "payload", "ts": epoch ms (float), "synthetic"}
    v2: {"id", "channel", "event_type", "payload", "ts_ms": epoch ms (int), "synthetic"}
    """
    try:
        old = json.loads(value)
        new = {
            "id": str(old["id"]),
            "channel": str(old["channel"]),
            "event_type": str(old["type"]),
            "payload": dict(old["payload"]),
            "ts_ms": int(old["ts"]),
            "synthetic": bool(old.get("synthetic", False)),
        }
    except (ValueError, TypeError, KeyError):
        return None
    return json.dumps(new, separators=(",", ":"), sort_keys=True).encode()


TRANSFORMS: Mapping[tuple[int, int], Transform] = {
    (1, 2): Transform(
        key_prefix=b"snap:",
        apply=snapshot_v1_to_v2,
        description="snapshots: event shape -> frame shape (type -> event_type, ts -> integer ts_ms)",
    ),
}


def transform_for(
    blue: int, green: int, registry: Mapping[tuple[int, int], Transform] | None = None
) -> Transform | None:
    return (TRANSFORMS if registry is None else registry).get((blue, green))
