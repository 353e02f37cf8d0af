"""The SQS fan-out handler: snapshots, delivery, Gone cleanup, throttling, rejects, alerts."""

from __future__ import annotations

import json

import pytest

from service import keys, models
from service.handlers import fanout as fanout_handler
from service.logic import connections, fanout
from service.settings import use_env
from tests.support.moto_service import drain


def sqs_event(*bodies: str) -> dict:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"h{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:events",
                "awsRegion": "eu-west-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def event(
    channel: str = "price:eth", ts: float = 1_700_000_000_000.0, synthetic: bool = False, **payload
) -> str:
    return models.Event(
        channel=channel, type="update", payload=payload or {"price": 100.0}, ts=ts, synthetic=synthetic
    ).model_dump_json()


@pytest.fixture
def subscribers(env, hub, r):
    recording, endpoint = hub
    for cid in ("a=", "b=", "c="):
        recording.open(cid)
        connections.register(r, cid, endpoint, "p", 0)
    for cid in ("a=", "b="):
        connections.subscribe(r, cid, "price:eth", 50)
    connections.subscribe(r, "c=", "tvl:aave", 50)
    return recording


def test_event_reaches_exactly_the_channel_subscribers_and_becomes_the_snapshot(
    subscribers, r, context
) -> None:
    body = event(price=101.0)
    assert fanout_handler.handler(sqs_event(body), context) == {"batchItemFailures": []}
    for cid in ("a=", "b="):
        (frame,) = [json.loads(f) for f in subscribers.inbox[cid]]
        assert (
            frame["type"] == "event"
            and frame["channel"] == "price:eth"
            and frame["payload"] == {"price": 101.0}
        )
    assert subscribers.inbox["c="] == []
    assert models.Event.model_validate_json(r.get(keys.snapshot_key(1, "price:eth"))).payload == {
        "price": 101.0
    }


def test_snapshot_goes_to_the_versions_namespace_and_never_backwards(subscribers, r, env, context) -> None:
    with use_env({**env, "CACHE_SCHEMA_VERSION": "7"}):
        fanout_handler.handler(sqs_event(event(ts=2000.0, price=2.0)), context)
        fanout_handler.handler(sqs_event(event(ts=1000.0, price=1.0)), context)
    assert not r.exists(keys.snapshot_key(1, "price:eth"))
    assert json.loads(r.get(keys.snapshot_key(7, "price:eth")))["payload"] == {"price": 2.0}
    # The older event was still delivered (clients see its ts), only not stored.
    assert len(subscribers.inbox["a="]) == 2


def test_gone_connections_are_removed(subscribers, r, context) -> None:
    subscribers.gone.add("b=")
    fanout_handler.handler(sqs_event(event()), context)
    assert r.smembers(keys.chan_key("price:eth")) == {b"a="}
    assert not r.exists(keys.conn_key("b="))


def test_expired_registry_entries_are_pruned(subscribers, r, context) -> None:
    r.delete(keys.conn_key("a="))
    fanout_handler.handler(sqs_event(event()), context)
    assert r.smembers(keys.chan_key("price:eth")) == {b"b="}
    assert subscribers.inbox["a="] == []


def test_throttled_posts_are_retried(subscribers, context) -> None:
    subscribers.busy["a="] = 3
    fanout_handler.handler(sqs_event(event()), context)
    assert len(subscribers.inbox["a="]) == 1 and subscribers.busy["a="] == 0


def test_oversized_and_invalid_records_fail_alone(subscribers, context, caplog) -> None:
    huge = event(price=1.0, blob="x" * (129 * 1024))
    result = fanout_handler.handler(sqs_event(event(), huge, '{"channel": "price:eth"}'), context)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    reasons = [rec.reason for rec in caplog.records if rec.getMessage() == "event rejected"]
    assert any("over the 131072-byte WebSocket message limit" in x for x in reasons)
    assert any("not a valid event" in x for x in reasons)
    assert len(subscribers.inbox["a="]) == 1


def test_all_posts_failing_fails_the_record_for_redelivery(subscribers, r, context) -> None:
    connections.register(r, "a=", "http://127.0.0.1:9/live", "p", 0)  # nothing listens on port 9
    connections.register(r, "b=", "http://127.0.0.1:9/live", "p", 0)
    result = fanout_handler.handler(sqs_event(event()), context)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    with pytest.raises(fanout.DeliveryFailed, match="no subscriber of price:eth reachable"):
        fanout.process(
            event(), r, schema=1, snapshot_ttl=60, rules=(), sns=None, topic_arn=None, concurrency=4
        )


def test_drop_rate_fault_drops_posts(subscribers, env, context) -> None:
    with use_env({**env, "FAULT_DROP_RATE": "1"}):
        fanout_handler.handler(sqs_event(event()), context)
    assert subscribers.inbox["a="] == [] and subscribers.inbox["b="] == []


def test_alerts_are_published_once_per_window_and_never_for_synthetic_events(
    subscribers, account, context
) -> None:
    base = 1_700_000_000_000.0
    bodies = [
        event(ts=base, price=100.0),
        event(ts=base + 1000, price=110.0),  # +10 %: fires
        event(ts=base + 2000, price=90.0),  # -18 %: same rule and window, deduplicated
        event(ts=base + 3000, price=200.0, synthetic=True),  # synthetic: never alerts
    ]
    for body in bodies:
        fanout_handler.handler(sqs_event(body), context)
    alerts = [json.loads(m["Body"]) for m in drain(account.alerts_queue_url)]
    assert len(alerts) == 1
    assert alerts[0]["rule_id"] == "price-move-5pct" and alerts[0]["value"] == 110.0
    assert alerts[0]["previous_value"] == 100.0 and alerts[0]["change_pct"] == 10.0
