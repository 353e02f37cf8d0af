"""Delivery shards: a channel over the shard size is split, queued back, and each shard is posted
once per connection (real Redis, moto SQS, a recording @connections API)."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from service import keys, models
from service.handlers import fanout as fanout_handler
from service.logic import connections, fanout
from service.settings import SettingsError, settings, use_env
from tests.support.moto_service import drain

CHANNEL = "price:eth"
ARN = "arn:aws:sqs:eu-west-1:123456789012:events"


def sqs_event(*messages: tuple[str, str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": f"h-{message_id}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": ARN,
                "awsRegion": "eu-west-1",
            }
            for message_id, body in messages
        ]
    }


def event_body(ts: float = 1_700_000_000_000.0, **payload: Any) -> str:
    return models.Event(
        channel=CHANNEL, type="update", payload=payload or {"price": 100.0}, ts=ts
    ).model_dump_json()


@pytest.fixture
def crowd(env, hub, r):
    """25 subscribers of CHANNEL, 1 of another channel; the shard size is 10."""
    recording, endpoint = hub
    ids = [f"conn-{i:02d}=" for i in range(25)]
    for cid in [*ids, "other="]:
        recording.open(cid)
        connections.register(r, cid, endpoint, "p", 0)
    for cid in ids:
        connections.subscribe(r, cid, CHANNEL, 50)
    connections.subscribe(r, "other=", "tvl:aave", 50)
    with use_env({**env, "FANOUT_SHARD_SIZE": "10"}):
        yield recording, ids


def shard_messages(account) -> list[dict[str, Any]]:
    return drain(account.events_url)


def frames(recording, cid: str) -> list[dict[str, Any]]:
    return [json.loads(f) for f in recording.inbox[cid]]


# -- planning ---------------------------------------------------------------------------------


def test_plan_partitions_the_sorted_ids_into_slices_of_the_shard_size() -> None:
    event = models.Event.model_validate_json(event_body())
    ids = sorted(f"c{i:05d}" for i in range(1234))
    shards = fanout.plan_shards(event, ids, 500, "split1")
    assert [len(s.connections) for s in shards] == [500, 500, 234]
    assert [s.shard for s in shards] == [0, 1, 2] and {s.shards for s in shards} == {3}
    assert [c for s in shards for c in s.connections] == ids  # each id once, in order
    assert all(s.event == event and s.split_id == "split1" for s in shards)


def test_a_large_event_gets_smaller_shards_that_fit_a_queue_message() -> None:
    event = models.Event(channel=CHANNEL, type="update", payload={"blob": "x" * 120_000})
    ids = [f"L0SM9cOFvHcCIhw{i:05d}=" for i in range(10_000)]
    shards = fanout.plan_shards(event, ids, 10_000, "split2")
    assert len(shards) > 1
    assert [c for s in shards for c in s.connections] == ids
    for shard in shards:
        assert len(shard.model_dump_json().encode()) <= models.MAX_QUEUE_MESSAGE_BYTES
    assert len(shards[0].connections) > 4000  # the budget is used, not wasted


def test_shard_messages_validate() -> None:
    event = models.Event.model_validate_json(event_body())
    with pytest.raises(ValueError, match="not below shards"):
        models.DeliveryShard(split_id="s", shard=3, shards=3, event=event, connections=["a"])
    with pytest.raises(ValueError, match="listed twice"):
        models.DeliveryShard(split_id="s", shard=0, shards=1, event=event, connections=["a", "a"])
    with pytest.raises(ValueError, match="at least 1"):
        fanout.plan_shards(event, ["a"], 0, "s")


def test_a_malformed_shard_is_rejected_with_the_field_named() -> None:
    with pytest.raises(fanout.EventRejected, match="not a valid delivery shard: shards"):
        fanout.parse_message(json.dumps({"kind": "delivery-shard", "split_id": "s", "shard": 0, "event": {}}))
    with pytest.raises(fanout.EventRejected, match="over the 262144-byte queue limit"):
        fanout.parse_message("x" * (256 * 1024 + 1))


def test_batches_respect_the_count_and_size_limits() -> None:
    bodies = ["a" * 100_000] * 5 + ["b" * 10] * 15
    batches = fanout._batches(bodies)
    assert all(len(b) <= 10 for b in batches)
    assert all(sum(len(body) for _, body in b) <= models.MAX_QUEUE_MESSAGE_BYTES for b in batches)
    assert sorted(int(i) for b in batches for i, _ in b) == list(range(20))


def test_the_shard_queue_is_the_records_own_queue() -> None:
    urls = (
        "https://sqs.eu-west-1.amazonaws.com/1/staging-events",
        "https://sqs.eu-west-1.amazonaws.com/1/staging-preview-events",
    )
    assert fanout.source_queue_url("arn:aws:sqs:eu-west-1:1:staging-events", urls) == urls[0]
    assert fanout.source_queue_url("arn:aws:sqs:eu-west-1:1:staging-preview-events", urls) == urls[1]
    assert fanout.source_queue_url("arn:aws:sqs:eu-west-1:1:elsewhere", urls) is None


def test_the_shard_size_setting_is_validated(env) -> None:
    with use_env({**env, "FANOUT_SHARD_SIZE": "0"}), pytest.raises(SettingsError, match="FANOUT_SHARD_SIZE"):
        settings()
    with use_env({**env, "FANOUT_SHARD_SIZE": "250"}):
        assert settings().fanout_shard_size == 250


# -- splitting and delivering -----------------------------------------------------------------


def test_a_split_event_reaches_each_subscriber_exactly_once(crowd, account, r, context) -> None:
    recording, ids = crowd
    assert fanout_handler.handler(sqs_event(("root", event_body(price=7.0))), context) == {
        "batchItemFailures": []
    }
    # The splitting invocation posts shard 0 (the first 10 sorted ids) and queues shards 1 and 2.
    assert [len(recording.inbox[cid]) for cid in ids] == [1] * 10 + [0] * 15
    assert models.Event.model_validate_json(r.get(keys.snapshot_key(1, CHANNEL))).payload == {"price": 7.0}
    messages = shard_messages(account)
    shards = [models.DeliveryShard.model_validate_json(m["Body"]) for m in messages]
    assert sorted(s.shard for s in shards) == [1, 2] and {s.shards for s in shards} == {3}
    assert all(len(m["Body"].encode()) <= models.MAX_QUEUE_MESSAGE_BYTES for m in messages)
    assert sorted(c for s in shards for c in s.connections) == ids[10:]

    batch = sqs_event(*((f"shard-{s.shard}", m["Body"]) for s, m in zip(shards, messages, strict=True)))
    assert fanout_handler.handler(batch, context) == {"batchItemFailures": []}
    for cid in ids:
        (frame,) = frames(recording, cid)
        assert frame["type"] == "event" and frame["payload"] == {"price": 7.0}
    assert recording.inbox["other="] == []


def test_redelivered_shards_and_the_redelivered_event_post_nothing_again(crowd, account, r, context) -> None:
    """Shards are idempotent: SQS may hand out the event and its shards again after success."""
    recording, ids = crowd
    root = ("root", event_body())
    fanout_handler.handler(sqs_event(root), context)
    bodies = [m["Body"] for m in shard_messages(account)]
    batch = sqs_event(*((f"s{i}", b) for i, b in enumerate(bodies)))
    fanout_handler.handler(batch, context)
    # SQS hands both the event and its shards out again (a failed delete, a duplicate).
    assert fanout_handler.handler(sqs_event(root), context) == {"batchItemFailures": []}
    assert shard_messages(account) == []
    assert fanout_handler.handler(batch, context) == {"batchItemFailures": []}
    assert all(len(recording.inbox[cid]) == 1 for cid in ids)


def test_a_new_message_of_the_same_event_is_split_again(crowd, account, context) -> None:
    # Only the queue message is deduplicated: a producer that sends twice gets two deliveries,
    # which clients drop by the event id (the documented at-least-once contract).
    body = event_body()
    fanout_handler.handler(sqs_event(("first", body)), context)
    fanout_handler.handler(sqs_event(("second", body)), context)
    shards = [models.DeliveryShard.model_validate_json(m["Body"]) for m in shard_messages(account)]
    assert len(shards) == 4 and len({s.split_id for s in shards}) == 2


def test_alerts_are_raised_once_by_the_splitting_invocation(crowd, account, context) -> None:
    base = 1_700_000_000_000.0
    fanout_handler.handler(sqs_event(("e1", event_body(ts=base, price=100.0))), context)
    drain(account.events_url)
    fanout_handler.handler(sqs_event(("e2", event_body(ts=base + 1000, price=110.0))), context)
    bodies = [m["Body"] for m in shard_messages(account)]
    fanout_handler.handler(sqs_event(*((f"s{i}", b) for i, b in enumerate(bodies))), context)
    alerts = [json.loads(m["Body"]) for m in drain(account.alerts_queue_url)]
    assert len(alerts) == 1 and alerts[0]["value"] == 110.0


def test_a_shard_posts_only_to_connections_still_subscribed(crowd, account, r, context) -> None:
    recording, ids = crowd
    fanout_handler.handler(sqs_event(("root", event_body())), context)  # posts ids[:10], queues the rest
    connections.unsubscribe(r, ids[10], CHANNEL)
    connections.unregister(r, ids[11])
    r.delete(keys.conn_key(ids[12]))  # registry entry expired: pruned from the channel set
    bodies = [m["Body"] for m in shard_messages(account)]
    fanout_handler.handler(sqs_event(*((f"s{i}", b) for i, b in enumerate(bodies))), context)
    assert [len(recording.inbox[cid]) for cid in ids[10:13]] == [0, 0, 0]
    assert all(len(recording.inbox[cid]) == 1 for cid in ids[:10] + ids[13:])
    assert ids[12].encode() not in r.smembers(keys.chan_key(CHANNEL))


def test_a_forged_shard_cannot_reach_connections_outside_the_channel(crowd, context) -> None:
    recording, ids = crowd
    event = models.Event.model_validate_json(event_body())
    forged = models.DeliveryShard(
        split_id="forged", shard=0, shards=1, event=event, connections=["other=", ids[0]]
    )
    fanout_handler.handler(sqs_event(("f", forged.model_dump_json())), context)
    assert recording.inbox["other="] == [] and len(recording.inbox[ids[0]]) == 1


def test_gone_connections_of_a_shard_are_removed(crowd, account, r, context) -> None:
    recording, ids = crowd
    recording.gone.add(ids[5])  # in shard 0, posted by the splitting invocation
    recording.gone.add(ids[15])  # in a queued shard
    fanout_handler.handler(sqs_event(("root", event_body())), context)
    bodies = [m["Body"] for m in shard_messages(account)]
    fanout_handler.handler(sqs_event(*((f"s{i}", b) for i, b in enumerate(bodies))), context)
    for cid in (ids[5], ids[15]):
        assert cid.encode() not in r.smembers(keys.chan_key(CHANNEL))
        assert not r.exists(keys.conn_key(cid))


def _one_shard(account, context) -> models.DeliveryShard:
    """Split an event and return its shard 1 (as queued), the others delivered or drained."""
    fanout_handler.handler(sqs_event(("root", event_body())), context)
    shards = sorted(
        (models.DeliveryShard.model_validate_json(m["Body"]) for m in shard_messages(account)),
        key=lambda s: s.shard,
    )
    return shards[0]


def test_a_shard_held_by_a_running_invocation_is_retried_not_posted_twice(crowd, account, r, context) -> None:
    recording, ids = crowd
    shard = _one_shard(account, context)
    lease = fanout.Sharding(lease_seconds=60)
    state, _ = fanout._claim(r, shard, lease)  # another invocation is posting this shard right now
    assert state == 1
    result = fanout_handler.handler(sqs_event(("dup", shard.model_dump_json())), context)
    assert result == {"batchItemFailures": [{"itemIdentifier": "dup"}]}
    assert all(recording.inbox[cid] == [] for cid in shard.connections)


def test_a_shard_whose_holder_crashed_is_delivered_once_the_claim_expires(crowd, account, r, context) -> None:
    recording, _ = crowd
    shard = _one_shard(account, context)
    key = keys.shard_marks_key(shard.split_id)
    r.hset(key, str(shard.shard), f"{int(time.time()) - 1} crashed-invocation")  # its claim ran out
    assert fanout_handler.handler(sqs_event(("again", shard.model_dump_json())), context) == {
        "batchItemFailures": []
    }
    assert all(len(recording.inbox[cid]) == 1 for cid in shard.connections)
    assert r.hget(key, str(shard.shard)) == b"done"
    assert 0 < r.ttl(key) <= 900


def test_a_shard_that_reached_nobody_gives_its_claim_back_for_the_retry(
    crowd, hub, account, r, context
) -> None:
    recording, _ = crowd
    shard = _one_shard(account, context)
    for cid in shard.connections:
        connections.register(r, cid, "http://127.0.0.1:9/live", "p", 0)  # nothing listens on port 9
    result = fanout_handler.handler(sqs_event(("s0", shard.model_dump_json())), context)
    assert result == {"batchItemFailures": [{"itemIdentifier": "s0"}]}
    assert r.hget(keys.shard_marks_key(shard.split_id), str(shard.shard)) is None
    for cid in shard.connections:  # the endpoint is back
        connections.register(r, cid, hub[1], "p", 0)
    assert fanout_handler.handler(sqs_event(("s0", shard.model_dump_json())), context) == {
        "batchItemFailures": []
    }
    assert all(len(recording.inbox[cid]) == 1 for cid in shard.connections)


def test_a_failed_split_is_retried_and_queues_nothing_twice_once_done(
    crowd, account, r, context, monkeypatch
) -> None:
    recording, ids = crowd
    calls: Counter[str] = Counter()
    real = fanout.queue_shards

    def failing_once(sqs, queue_url, shards, concurrency):
        calls["n"] += 1
        if calls["n"] == 1:
            raise fanout.SplitFailed("1 of 3 shards not queued (InternalError)")
        return real(sqs, queue_url, shards, concurrency)

    monkeypatch.setattr(fanout, "queue_shards", failing_once)
    assert fanout_handler.handler(sqs_event(("root", event_body())), context) == {
        "batchItemFailures": [{"itemIdentifier": "root"}]
    }
    assert not r.exists(keys.split_mark_key("root"))
    assert fanout_handler.handler(sqs_event(("root", event_body())), context) == {"batchItemFailures": []}
    assert r.exists(keys.split_mark_key("root"))
    assert len(shard_messages(account)) == 2
    assert sum(len(recording.inbox[cid]) for cid in ids) == 10  # shard 0, once


def test_a_split_whose_own_shard_reached_nobody_posts_it_on_redelivery(
    crowd, hub, account, r, context
) -> None:
    recording, ids = crowd
    for cid in ids[:10]:  # shard 0's connections: their endpoint is down
        connections.register(r, cid, "http://127.0.0.1:9/live", "p", 0)
    assert fanout_handler.handler(sqs_event(("root", event_body())), context) == {
        "batchItemFailures": [{"itemIdentifier": "root"}]
    }
    assert len(shard_messages(account)) == 2  # the others were queued before
    for cid in ids[:10]:
        connections.register(r, cid, hub[1], "p", 0)
    assert fanout_handler.handler(sqs_event(("root", event_body())), context) == {"batchItemFailures": []}
    assert shard_messages(account) == []  # nothing queued twice
    assert [len(recording.inbox[cid]) for cid in ids[:10]] == [1] * 10


def test_queue_shards_reports_entries_sqs_refused(crowd) -> None:
    event = models.Event.model_validate_json(event_body())
    shards = fanout.plan_shards(event, [f"c{i}" for i in range(30)], 10, "split3")

    class Refusing:
        def __init__(self) -> None:
            self.calls = 0

        def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:  # noqa: N803
            self.calls += 1
            return {
                "Successful": [],
                "Failed": [
                    {
                        "Id": e["Id"],
                        "Code": "KMS.ThrottlingException",
                        "SenderFault": False,
                        "Message": "slow down",
                    }
                    for e in Entries
                ],
            }

    sqs = Refusing()
    with pytest.raises(
        fanout.SplitFailed, match="3 of 3 shards not queued .KMS.ThrottlingException: slow down"
    ):
        fanout.queue_shards(sqs, "https://queue", shards, concurrency=2)
    assert sqs.calls == fanout.SEND_ROUNDS


def test_small_channels_are_posted_inline_as_before(crowd, account, r, context, env) -> None:
    recording, ids = crowd
    with use_env({**env, "FANOUT_SHARD_SIZE": "25"}):
        fanout_handler.handler(sqs_event(("root", event_body())), context)
    assert shard_messages(account) == []
    assert all(len(recording.inbox[cid]) == 1 for cid in ids)


def test_channels_under_the_split_threshold_are_posted_inline(crowd, account, env, context) -> None:
    recording, ids = crowd
    with use_env({**env, "FANOUT_SHARD_SIZE": "10", "FANOUT_SPLIT_ABOVE": "30"}):
        fanout_handler.handler(sqs_event(("root", event_body())), context)
    assert shard_messages(account) == []
    assert all(len(recording.inbox[cid]) == 1 for cid in ids)


def test_without_a_known_queue_the_event_is_posted_inline(crowd, account, env, context) -> None:
    recording, ids = crowd
    with use_env({**env, "EVENTS_QUEUE_URL": "", "FANOUT_SHARD_SIZE": "10"}):
        fanout_handler.handler(sqs_event(("root", event_body())), context)
    assert shard_messages(account) == []
    assert all(len(recording.inbox[cid]) == 1 for cid in ids)
