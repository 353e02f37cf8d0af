"""warm_cache against a real server: contract, no-op, TTLs, transform, dry run, cleanup, budget."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from service.redis_client import reset_clients
from tasks import warm_cache
from tasks.cache.transforms import TRANSFORMS
from tasks.cache.warm import match_pattern, plan_warm, warm
from tasks.errors import CacheUnavailable, InvalidRelease
from tests.support.cache_dataset import assert_same, load, snapshot

# A failed invocation publishes no metrics; Powertools warns about that, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@dataclass
class FakeContext:
    function_name: str = "warm-cache"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:warm-cache"
    aws_request_id: str = "req-1"
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def r(service_redis: redis.Redis) -> redis.Redis:
    return service_redis


def event(**overrides: Any) -> dict[str, Any]:
    base = {
        "release_id": "rel-42",
        "environment": "staging",
        "blue_schema": "1",
        "green_schema": "2",
        "cursor": "0",
        "dry_run": False,
    }
    return {**base, **overrides}


def run_to_completion(payload: dict[str, Any], context: FakeContext | None = None) -> list[dict[str, Any]]:
    """Loop like the state machine: feed the returned cursor back until done."""
    outputs = []
    for _ in range(10_000):
        out = warm_cache.handler(payload, context or FakeContext())
        outputs.append(out)
        if out["done"]:
            return outputs
        payload = {**payload, "cursor": out["cursor"]}
    raise AssertionError("warm never finished")


def test_output_matches_the_contract(r: redis.Redis) -> None:
    r.set("cache:v3:snap:price:eth", "42")
    out = warm_cache.handler(event(blue_schema="3", green_schema="4"), FakeContext())
    assert set(out) == {
        "cursor",
        "done",
        "noop",
        "keys_copied",
        "bytes_copied",
        "duration_ms",
        "target_namespace",
    }
    assert out["done"] is True and out["noop"] is False and out["cursor"] == "0"
    assert out["keys_copied"] == 1 and out["bytes_copied"] > 0
    assert out["target_namespace"] == "cache:v4:"
    assert r.get("cache:v4:snap:price:eth") == b"42"


def test_same_schema_is_a_verified_noop(r: redis.Redis) -> None:
    load(r, "cache:v5:", 50)
    before = snapshot(r, "cache:v5:")
    keys_before = r.dbsize()
    out = warm_cache.handler(event(blue_schema="5", green_schema="05"), FakeContext())
    assert out["noop"] is True and out["done"] is True and out["keys_copied"] == 0
    assert out["target_namespace"] == "cache:v5:"
    assert r.dbsize() == keys_before
    assert snapshot(r, "cache:v5:") == before


def test_mixed_types_and_ttls_are_copied_exactly_in_small_batches(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARM_BATCH_KEYS", "10")
    monkeypatch.setenv("WARM_TIME_BUDGET_SECONDS", "1")
    load(r, "cache:v3:", 2000)
    r.set("cache:v30:other", "not in the namespace")
    r.set("conn:abc", "registry")
    outputs = run_to_completion(event(blue_schema="3", green_schema="7"))
    assert sum(o["keys_copied"] for o in outputs) >= 2000  # SCAN may repeat a key; COPY REPLACE is harmless
    assert_same(snapshot(r, "cache:v3:"), snapshot(r, "cache:v7:"))
    assert r.exists("cache:v7:0:other") == 0 and r.exists("cache:v7:other") == 0
    assert r.get("cache:v30:other") == b"not in the namespace"


def test_time_budget_returns_a_cursor_and_the_loop_resumes_from_it(r: redis.Redis) -> None:
    load(r, "cache:v1:", 3000)
    plan = plan_warm(1, 3, release_id="rel-1", dry_run=False)
    ticks = iter(range(1_000_000))
    first = warm(r, plan, "0", budget_seconds=0, batch_keys=100, clock=lambda: float(next(ticks)))
    assert first.batches == 1 and not first.done and first.cursor != "0"
    rest = warm(r, plan, first.cursor, budget_seconds=3600, batch_keys=100)
    assert rest.done and rest.cursor == "0"
    assert first.keys_copied + rest.keys_copied >= 3000
    assert_same(snapshot(r, "cache:v1:"), snapshot(r, "cache:v3:"))


def test_bytes_copied_estimates_the_copied_footprint(r: redis.Redis) -> None:
    """bytes_copied scales MEMORY USAGE of a sample of the copied keys (one in 32) to all of them."""
    load(r, "cache:v1:", 10_000)  # about 300 keys sampled: the estimate is within a few percent
    progress = warm(r, plan_warm(1, 3, release_id="rel-bytes", dry_run=False), "0", budget_seconds=3600)
    measured = sum(int(r.memory_usage(key) or 0) for key in r.scan_iter(match="cache:v3:*", count=1000))
    assert progress.done and progress.keys_copied >= 10_000  # SCAN may return a key twice
    assert 0.75 * measured <= progress.bytes_copied <= 1.25 * measured, (progress.bytes_copied, measured)


def test_budget_is_capped_by_the_invocations_remaining_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARM_TIME_BUDGET_SECONDS", "60")
    assert warm_cache.time_budget(FakeContext(remaining_ms=20_000)) == pytest.approx(15.0)
    assert warm_cache.time_budget(FakeContext(remaining_ms=900_000)) == pytest.approx(60.0)
    assert warm_cache.time_budget(None) == pytest.approx(60.0)


def test_cache_settings_name_every_bad_variable(monkeypatch: pytest.MonkeyPatch, r: redis.Redis) -> None:
    from tasks.settings import SettingsError

    monkeypatch.setenv("WARM_TIME_BUDGET_SECONDS", "a minute")
    monkeypatch.setenv("WARM_BATCH_KEYS", "5")
    with pytest.raises(SettingsError) as caught:
        warm_cache.handler(event(), FakeContext())
    assert str(caught.value) == (
        "cache task settings invalid: WARM_TIME_BUDGET_SECONDS must be an integer, got 'a minute'; "
        "WARM_BATCH_KEYS must be between 10 and 100000, got 5"
    )


def test_repeating_a_batch_changes_nothing(r: redis.Redis) -> None:
    """A retried invocation (same cursor) rewrites the same content: idempotent."""
    load(r, "cache:v1:", 500)
    payload = event(blue_schema="1", green_schema="9")
    run_to_completion(payload)
    first = snapshot(r, "cache:v9:")
    run_to_completion(payload)
    assert snapshot(r, "cache:v9:") == first


def test_transform_reshapes_snapshots_and_keeps_their_expiry(r: redis.Redis) -> None:
    v1 = {
        "id": "e1",
        "channel": "price:eth",
        "type": "price_update",
        "payload": {"p": 3120.5},
        "ts": 1.7e12 + 0.25,
        "synthetic": False,
    }
    r.set("cache:v1:snap:price:eth", json.dumps(v1), ex=3600)
    r.set("cache:v1:snap:price:btc", json.dumps(v1 | {"channel": "price:btc"}))
    r.set("cache:v1:snap:broken", "not json", ex=60)
    r.hset("cache:v1:snap:odd-hash", mapping={"a": "1"})  # not a string: copied as it is
    r.set("cache:v1:counter:x", "5", ex=100)
    out = run_to_completion(event(blue_schema="1", green_schema="2"))
    assert sum(o["keys_copied"] for o in out) == 4
    reshaped = json.loads(r.get("cache:v2:snap:price:eth"))
    assert reshaped == {
        "id": "e1",
        "channel": "price:eth",
        "event_type": "price_update",
        "payload": {"p": 3120.5},
        "ts_ms": 1700000000000,
        "synthetic": False,
    }
    assert r.pexpiretime("cache:v2:snap:price:eth") == r.pexpiretime("cache:v1:snap:price:eth")
    assert r.pexpiretime("cache:v2:snap:price:btc") == -1
    assert r.exists("cache:v2:snap:broken") == 0  # a value in the wrong shape is left out
    assert r.hgetall("cache:v2:snap:odd-hash") == {b"a": b"1"}
    assert r.get("cache:v2:counter:x") == b"5"
    assert r.pexpiretime("cache:v2:counter:x") == r.pexpiretime("cache:v1:counter:x")


def test_registered_transforms_really_change_the_shape() -> None:
    for (blue, green), transform in TRANSFORMS.items():
        assert blue != green and transform.key_prefix
    old = {"id": "x", "channel": "tvl:aave", "type": "tvl", "payload": {}, "ts": 5.9}
    new = json.loads(TRANSFORMS[(1, 2)].apply(b"snap:tvl:aave", json.dumps(old).encode()) or b"null")
    assert "type" not in new and new["event_type"] == "tvl" and new["ts_ms"] == 5


def test_dry_run_warms_a_scratch_namespace_that_cleanup_removes(r: redis.Redis) -> None:
    load(r, "cache:v1:", 300)
    outputs = run_to_completion(event(blue_schema="1", green_schema="3", dry_run=True, release_id="rel-7"))
    assert outputs[-1]["target_namespace"] == "cache:dryrun:rel-7:"
    assert_same(snapshot(r, "cache:v1:"), snapshot(r, "cache:dryrun:rel-7:"))
    assert not list(r.scan_iter(match="cache:v3:*"))
    out = warm_cache.cleanup_handler(
        {"release_id": "rel-7", "blue_schema": "1", "green_schema": "3", "dry_run": True}, FakeContext()
    )
    assert out == {"deleted": 300}
    assert not list(r.scan_iter(match="cache:dryrun:*"))
    assert len(snapshot(r, "cache:v1:").entries) == 300


def test_cleanup_deletes_greens_namespace_only(r: redis.Redis) -> None:
    load(r, "cache:v1:", 1200)
    load(r, "cache:v2:", 2500)
    r.set("cache:v21:keep", "1")
    r.sadd("chan:price:eth", "c1")
    out = warm_cache.cleanup_handler(
        {"release_id": "rel-8", "blue_schema": "1", "green_schema": "2", "dry_run": False}, FakeContext()
    )
    assert out == {"deleted": 2500}
    assert not list(r.scan_iter(match="cache:v2:*"))
    assert len(snapshot(r, "cache:v1:").entries) == 1200
    assert r.get("cache:v21:keep") == b"1" and r.smembers("chan:price:eth") == {b"c1"}


def test_cleanup_never_deletes_blues_namespace(r: redis.Redis) -> None:
    load(r, "cache:v4:", 100)
    out = warm_cache.cleanup_handler(
        {"release_id": "rel-9", "blue_schema": "4", "green_schema": "4"}, FakeContext()
    )
    assert out == {"deleted": 0}
    assert len(snapshot(r, "cache:v4:").entries) == 100


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"blue_schema": "one"}, "blue_schema"),
        ({"green_schema": "-1"}, "green_schema"),
        ({"cursor": "abc"}, "cursor"),
        ({"release_id": "rel *"}, "release_id"),
        ({"environment": ""}, "environment"),
    ],
)
def test_invalid_input_is_refused_naming_the_field(
    override: dict[str, Any], field: str, r: redis.Redis
) -> None:
    with pytest.raises(InvalidRelease, match=field):
        warm_cache.handler(event(**override), FakeContext())


def test_unreachable_cache_raises_a_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.sandbox.redis_server import free_port

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("REDIS_TIMEOUT_SECONDS", "0.2")
    reset_clients()
    try:
        with pytest.raises(CacheUnavailable, match="cache unreachable while warming cache:v2: from cursor 0"):
            warm_cache.handler(event(), FakeContext())
    finally:
        reset_clients()


def test_match_pattern_escapes_glob_characters() -> None:
    assert match_pattern("cache:dryrun:a*b?[c]\\:") == b"cache:dryrun:a\\*b\\?\\[c\\]\\\\:*"


def test_overlapping_namespaces_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tasks.cache.warm.dry_run_namespace", lambda release_id: "cache:v1:sub:")
    with pytest.raises(ValueError, match="overlap"):
        plan_warm(1, 2, release_id="x", dry_run=True)
