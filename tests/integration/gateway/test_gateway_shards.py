"""A split fan-out end to end: real WebSocket clients, the gateway's SQS poller, the fan-out's
shards queued back onto the events queue and posted by later invocations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import redis
from moto import mock_aws

from service import keys, models
from service.clients import aws as aws_clients
from service.clients import connections as posting
from service.logic import authorizer
from service.redis_client import reset_clients
from tests.integration.gateway.conftest import Stack, build_stack, eventually, fence, recv_json, request

CLIENTS = 8
SHARD_SIZE = 3


@pytest.fixture
def sharded(redis_url: str) -> Iterator[Stack]:
    with mock_aws():
        aws_clients.reset()
        posting.reset()
        authorizer.CACHE.clear()
        built, stop = build_stack(redis_url, extra_env={"FANOUT_SHARD_SIZE": str(SHARD_SIZE)})
        try:
            yield built
        finally:
            stop()
            aws_clients.reset()
            authorizer.CACHE.clear()
            reset_clients()


def test_a_channel_over_the_shard_size_is_delivered_through_shards_once_each(sharded: Stack) -> None:
    with ExitStack() as stack:
        clients = [stack.enter_context(sharded.client()) for _ in range(CLIENTS)]
        for ws in clients:
            assert request(ws, action="subscribe", channel="price:hot")[0]["type"] == "subscribed"
        bystander = stack.enter_context(sharded.client())
        request(bystander, action="subscribe", channel="price:cold")
        sent = sharded.publish(sharded.account.events_url, channel="price:hot", payload={"price": 1.5})
        received = [recv_json(ws) for ws in clients]
        assert all(f["type"] == "event" and f["ts"] == sent["ts"] for f in received)
        assert len({f["id"] for f in received}) == 1  # one event, split: every shard carries its id
        r = redis.Redis.from_url(sharded.redis_url)
        (split,) = r.keys("fanout:split:*")  # the event's queue message was split once
        kept = r.get(split)
        assert isinstance(kept, bytes)
        first = models.DeliveryShard.model_validate_json(kept)  # shard 0, posted by the splitter
        assert first.shard == 0 and first.shards == 3  # 8 subscribers in shards of 3
        marks = keys.shard_marks_key(first.split_id)
        assert eventually(lambda: r.hgetall(marks) == {b"0": b"done", b"1": b"done", b"2": b"done"})
        for ws in clients:
            assert fence(ws) == []  # exactly one frame each
        assert fence(bystander) == []
