"""Warm logic: plan the copy, run bounded batches, clean up a namespace.

Correctness on retry and reconnect, in brief:
- Progress lives only in the SCAN cursor that the step returns. SCAN guarantees that every key
  present for the whole scan is returned at least once from any cursor it handed out, so
  resuming from the last returned cursor loses nothing.
- A batch may run twice (its reply lost to a connection reset and the command retried, or a
  whole invocation retried by the state machine). Every write is `COPY ... REPLACE` or a
  `SET` of the same value with the same absolute expiry, so a repeat leaves the same content:
  repeated work is harmless and counted once, since only answered batches are counted.
- Memory is constant: one batch of keys (and, for a transform, their string values) at a time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import ConnectionError, TimeoutError

from service.keys import cache_namespace, dry_run_namespace, parse_schema
from tasks.cache.scripts import COPY_BATCH, DELETE_BATCH
from tasks.cache.transforms import Transform, transform_for
from tasks.errors import CacheUnavailable

# Keys asked of each SCAN inside the copy script (see COPY_BATCH: small scans keep the keys
# just read in the CPU's caches while they are copied).
SCAN_COUNT = 64
# Bounds one call's work when the namespace is sparse among many other keys: a call looks at
# about MAX_SCAN_ROUNDS x batch slots of the keyspace at most.
MAX_SCAN_ROUNDS = 16
# bytes_copied is estimated from MEMORY USAGE of one copied key in this many (see COPY_BATCH).
FOOTPRINT_SAMPLE_EVERY = 32
_GLOB_SPECIALS = re.compile(rb"([*?\[\]\\])")


@dataclass(frozen=True)
class WarmPlan:
    source: str
    target: str
    noop: bool
    transform: Transform | None


@dataclass
class WarmProgress:
    cursor: str
    done: bool
    keys_copied: int = 0
    bytes_copied: int = 0  # estimated footprint of the copied keys (sampled MEMORY USAGE)
    batches: int = 0


def plan_warm(
    blue_schema: int | str,
    green_schema: int | str,
    *,
    release_id: str,
    dry_run: bool,
    registry: Mapping[tuple[int, int], Transform] | None = None,
) -> WarmPlan:
    """Where to copy from and to; a no-op when blue's and green's namespaces are the same."""
    source, green = cache_namespace(blue_schema), cache_namespace(green_schema)
    if source == green:
        # Same namespace: blue and green already share every key. A dry run rehearses the
        # real step, which does nothing here, so it does nothing either.
        return WarmPlan(source=source, target=green, noop=True, transform=None)
    target = dry_run_namespace(release_id) if dry_run else green
    if target.startswith(source) or source.startswith(target):
        raise ValueError(f"namespaces {source!r} and {target!r} overlap; refusing to copy one into the other")
    transform = transform_for(parse_schema(blue_schema), parse_schema(green_schema), registry)
    return WarmPlan(source=source, target=target, noop=False, transform=transform)


def match_pattern(prefix: str) -> bytes:
    """A SCAN MATCH pattern for every key under `prefix`, glob characters escaped."""
    return _GLOB_SPECIALS.sub(rb"\\\1", prefix.encode()) + b"*"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _write_transformed(client: redis.Redis, plan: WarmPlan, pending: list[Any]) -> tuple[int, int]:
    """Write reshaped string values with their absolute expiry; returns (keys, bytes)."""
    assert plan.transform is not None
    target = plan.target.encode()
    pipe = client.pipeline(transaction=False)
    keys = size = 0
    for i in range(0, len(pending), 3):
        suffix, value, expire_at = bytes(pending[i]), bytes(pending[i + 1]), int(pending[i + 2])
        if expire_at == -2:  # expired between SCAN and GET
            continue
        new_value = plan.transform.apply(suffix, value)
        if new_value is None:
            continue
        if expire_at > 0:
            # Absolute expiry: a retried write lands on the same deadline, however late.
            pipe.set(target + suffix, new_value, pxat=expire_at)
        else:
            pipe.set(target + suffix, new_value)
        keys += 1
        size += len(new_value)
    if keys:
        pipe.execute()
    return keys, size


def warm(
    client: redis.Redis,
    plan: WarmPlan,
    cursor: str = "0",
    *,
    budget_seconds: float,
    batch_keys: int = 1000,
    clock: Callable[[], float] = time.monotonic,
    on_batch: Callable[[WarmProgress], None] | None = None,
) -> WarmProgress:
    """Copy batches from `cursor` until the scan completes or the time budget is spent.

    A connection failure that outlives the client's own retries ends the invocation early with
    the last good cursor when some progress was made (the state machine simply calls again);
    with no progress at all it raises CacheUnavailable.
    """
    progress = WarmProgress(cursor=cursor, done=False)
    if plan.noop:
        progress.cursor, progress.done = "0", True
        return progress
    script = client.register_script(COPY_BATCH)
    pattern = match_pattern(plan.source)
    tprefix = plan.transform.key_prefix if plan.transform else b""
    count = min(batch_keys, SCAN_COUNT)
    rounds = MAX_SCAN_ROUNDS * -(-batch_keys // count)
    deadline = clock() + budget_seconds
    while True:
        try:
            reply = script(
                args=[
                    plan.source,
                    plan.target,
                    progress.cursor,
                    batch_keys,
                    pattern,
                    rounds,
                    tprefix,
                    FOOTPRINT_SAMPLE_EVERY,
                    count,
                ]
            )
            copied, size = int(reply[1]), int(reply[2])
            if len(reply) > 3:
                extra_keys, extra_bytes = _write_transformed(client, plan, reply[3:])
                copied, size = copied + extra_keys, size + extra_bytes
        except (ConnectionError, TimeoutError) as exc:
            if progress.batches:
                return progress
            raise CacheUnavailable(
                f"cache unreachable while warming {plan.target} from cursor {cursor}: {exc}"
            ) from exc
        # The cursor advances only after the whole batch (including reshaped values) is written.
        progress.cursor = _text(reply[0])
        progress.keys_copied += copied
        progress.bytes_copied += size
        progress.batches += 1
        progress.done = progress.cursor == "0"
        if on_batch is not None:
            on_batch(progress)
        if progress.done or clock() >= deadline:
            return progress


def cleanup(client: redis.Redis, namespace: str, *, protected: str, batch_keys: int = 1000) -> int:
    """Delete every key under `namespace` (never the `protected` one, blue's); returns the count."""
    if namespace == protected or protected.startswith(namespace):
        return 0
    script = client.register_script(DELETE_BATCH)
    pattern = match_pattern(namespace)
    cursor, deleted = "0", 0
    while True:
        try:
            reply = script(args=[cursor, pattern, batch_keys, MAX_SCAN_ROUNDS])
        except (ConnectionError, TimeoutError) as exc:
            raise CacheUnavailable(f"cache unreachable while deleting {namespace}: {exc}") from exc
        cursor, deleted = _text(reply[0]), deleted + int(reply[1])
        if cursor == "0":
            return deleted
