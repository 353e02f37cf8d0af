"""warm_cache at scale and under connection resets, against the real sandbox server."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.redis_client import get_redis
from tasks import warm_cache
from tasks.cache.warm import WarmProgress, plan_warm, warm
from tasks.errors import CacheUnavailable
from tests.support.cache_dataset import digest, load

KEYS = 100_000


class Context:
    function_name = "warm-cache"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:warm-cache"
    aws_request_id = "req-int"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def admin(service_redis: redis.Redis) -> redis.Redis:
    return service_redis


WARM_CLIENT = "warm-under-test"


def kill_warm_clients(admin: redis.Redis) -> int:
    """CLIENT KILL every connection of the warm's client (named), from another connection."""
    ids = [c["id"] for c in admin.client_list() if c.get("name") == WARM_CLIENT]
    return sum(int(admin.execute_command("CLIENT", "KILL", "ID", i)) for i in ids)


def test_100k_mixed_keys_arrive_identical_with_their_ttls(admin: redis.Redis) -> None:
    load(admin, "cache:v1:", KEYS)
    payload: dict[str, Any] = {
        "release_id": "rel-100k",
        "environment": "staging",
        "blue_schema": "1",
        "green_schema": "3",
        "cursor": "0",
        "dry_run": False,
    }
    copied = invocations = 0
    while True:
        out = warm_cache.handler(payload, Context())
        copied, invocations = copied + out["keys_copied"], invocations + 1
        if out["done"]:
            break
        payload["cursor"] = out["cursor"]
    assert copied >= KEYS
    source = digest(admin, "cache:v1:")
    assert source.count == KEYS and source.expiring > KEYS // 2
    # Same count and checksum over (key, type, content, absolute expiry): identical content,
    # types and TTLs (to the millisecond), whatever encodings the server chose.
    assert digest(admin, "cache:v3:") == source


def test_connections_killed_mid_warm_lose_nothing(
    admin: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLIENT KILL between batches (deterministic) and while batches run (a killer thread):
    the client's retries resume from the same cursor, and the copy is complete and exact."""
    load(admin, "cache:v1:", KEYS)
    monkeypatch.setenv("REDIS_URL", f"{redis_url}?client_name={WARM_CLIENT}")
    client = get_redis()
    plan = plan_warm(1, 2, release_id="rel-kill", dry_run=False)
    kills: list[int] = []

    def between_batches(progress: WarmProgress) -> None:
        if progress.batches % 40 == 0:
            kills.append(kill_warm_clients(admin))

    stop = threading.Event()

    def killer() -> None:
        with redis.Redis.from_url(_url(admin)) as other:
            while not stop.wait(0.01):
                kills.append(kill_warm_clients(other))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    invocations, copied = 0, 0
    progress = WarmProgress(cursor="0", done=False)
    try:
        # As the state machine does: when the client's retries run out (a slow machine lets the
        # killer hit every retry), the invocation returns its last good cursor and the next resumes.
        # A call whose very first batch runs out of retries raises CacheUnavailable ("the step can
        # be retried from its last cursor"); this loop retries it from that cursor.
        while not progress.done and invocations < 50:
            invocations += 1
            try:
                progress = warm(
                    client,
                    plan,
                    progress.cursor,
                    budget_seconds=600,
                    batch_keys=200,
                    on_batch=between_batches,
                )
            except CacheUnavailable:
                continue
            copied += progress.keys_copied
    finally:
        stop.set()
        thread.join()
    assert progress.done, (invocations, progress)
    assert sum(kills) >= 5, kills  # connections really were killed mid-warm
    assert copied >= KEYS
    assert digest(admin, "cache:v2:") == digest(admin, "cache:v1:")


def test_an_invocation_cut_short_by_a_reset_returns_its_cursor_and_the_next_one_finishes(
    admin: redis.Redis, redis_url: str
) -> None:
    """Without client retries a reset ends the invocation early with the last good cursor;
    the state machine's next call resumes from it and nothing is lost."""
    load(admin, "cache:v1:", 20_000)
    # One connection, no retries: a reset surfaces to the warm loop instead of being retried.
    fragile = redis.Redis.from_url(
        redis_url, retry=Retry(NoBackoff(), 0), single_connection_client=True, client_name=WARM_CLIENT
    )
    plan = plan_warm(1, 4, release_id="rel-reset", dry_run=False)

    def cut(progress: WarmProgress) -> None:
        if progress.batches == 5:
            kill_warm_clients(admin)

    first = warm(fragile, plan, "0", budget_seconds=600, batch_keys=500, on_batch=cut)
    assert not first.done and first.batches == 5 and first.cursor != "0"
    second = warm(fragile, plan, first.cursor, budget_seconds=600, batch_keys=500)
    assert second.done
    assert first.keys_copied + second.keys_copied >= 20_000
    assert digest(admin, "cache:v4:") == digest(admin, "cache:v1:")
    fragile.close()


def _url(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"
