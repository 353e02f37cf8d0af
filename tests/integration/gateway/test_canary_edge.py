"""The connection canary through the local edge and gateway, with real WebSocket clients.

The edge runs the real CloudFront Function (infra/edge/canary_router.js) in Node.js, reading the
share the test writes with boto3's PutKey into the sandbox's KeyValueStore. `live` is pinned to
version 1 and `green` to version 2: a connection the edge sent to `/canary` must run every
invocation ($connect, messages, $disconnect) on version 2, and one it left on `/live` on version
1, for its whole life, whatever their aliases' weights would draw per invocation.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from orchestrator.gateway import EdgeFunction, EdgeFunctionCode, Invocation
from orchestrator.gateway.metrics import API_NAMESPACE
from orchestrator.sandbox import emulation
from orchestrator.sandbox.keyvaluestore import STORES
from service.clients import aws as aws_clients
from service.clients import connections as posting
from service.logic import authorizer
from service.redis_client import reset_clients
from tests.integration.gateway.conftest import Stack, build_stack, eventually, fence, recv_json, request

ROUTER = Path(__file__).resolve().parents[3] / "infra" / "edge" / "canary_router.js"
ACCOUNT = "123456789012"
VERSION_OF_STAGE = {"live": "1", "canary": "2"}


@dataclass
class Seen:
    """Every integration each connection ran: connection id -> [(stage, route, function, version)]."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    runs: dict[str, list[tuple[str, str, str, str]]] = field(default_factory=lambda: defaultdict(list))

    def __call__(self, connection_id: str, stage: str, route: str, invocation: Invocation) -> None:
        with self.lock:
            self.runs[connection_id].append((stage, route, invocation.function_key, invocation.version))

    def snapshot(self) -> dict[str, list[tuple[str, str, str, str]]]:
        with self.lock:
            return {k: list(v) for k, v in self.runs.items()}

    def clear(self) -> None:
        with self.lock:
            self.runs.clear()


@dataclass
class Canary:
    stack: Stack
    seen: Seen
    store_arn: str
    edge: EdgeFunction

    def set_share(self, percent: int) -> None:
        kvs = boto3.client("cloudfront-keyvaluestore", region_name="eu-west-1")
        etag = kvs.describe_key_value_store(KvsARN=self.store_arn)["ETag"]
        kvs.put_key(KvsARN=self.store_arn, Key="canary_share", Value=str(percent), IfMatch=etag)

    def session(self, _: int) -> None:
        """One client's life on the public URL: connect, a message (answered through the
        connection's @connections endpoint), close."""
        with self.stack.client("live") as ws:
            assert fence(ws) == []

    def run_sessions(self, count: int, threads: int = 16) -> dict[str, list[tuple[str, str, str, str]]]:
        self.seen.clear()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(self.session, range(count)))
        # $disconnect runs after the close: wait until every connection has had it.
        assert eventually(
            lambda: (
                sum(any(r[1] == "$disconnect" for r in runs) for runs in self.seen.snapshot().values())
                == count
            ),
            timeout=60,
        )
        runs = self.seen.snapshot()
        assert len(runs) == count
        return runs


@pytest.fixture
def canary(redis_url: str) -> Iterator[Canary]:
    with mock_aws():
        aws_clients.reset()
        posting.reset()
        authorizer.CACHE.clear()
        emulation.install()  # the KeyValueStore API (answered by moto's stubber under mock_aws)
        store = STORES.create_in(ACCOUNT, "staging-canary-share")
        edge = EdgeFunction(EdgeFunctionCode.from_file(ROUTER, [store.arn]), STORES.items)
        seen = Seen()
        built, stop = build_stack(redis_url, edge=edge, observer=seen)  # live -> 1, green -> 2
        try:
            yield Canary(built, seen, store.arn, edge)
        finally:
            stop()
            emulation.uninstall()
            aws_clients.reset()
            authorizer.CACHE.clear()
            reset_clients()


def _by_connection(runs: dict[str, list[tuple[str, str, str, str]]]) -> dict[str, tuple[str, set[str]]]:
    """connection id -> (its one stage, the versions its invocations ran)."""
    out: dict[str, tuple[str, set[str]]] = {}
    for connection_id, items in runs.items():
        stages = {stage for stage, _, _, _ in items}
        assert len(stages) == 1, f"connection {connection_id} changed stage: {items}"
        routes = [route for _, route, _, _ in items]
        assert routes.count("$disconnect") == 1 and "$connect" in routes and "ping" in routes, items
        out[connection_id] = (stages.pop(), {version for _, _, _, version in items})
    return out


def test_the_share_of_connections_is_pinned_to_green_for_their_life(canary: Canary) -> None:
    n, share = 400, 0.10
    canary.set_share(10)
    connections = _by_connection(canary.run_sessions(n))
    for connection_id, (stage, versions) in connections.items():
        assert versions == {VERSION_OF_STAGE[stage]}, f"{connection_id} on {stage} ran versions {versions}"
    on_canary = sum(stage == "canary" for stage, _ in connections.values())
    # Two-sided 99.9% bound of a binomial(400, 0.1): |k - 40| <= 3.29 * sqrt(400 * 0.1 * 0.9) ~ 19.7.
    bound = 3.29 * math.sqrt(n * share * (1 - share))
    assert abs(on_canary - n * share) <= bound, f"{on_canary} of {n} on canary"
    assert canary.edge.calls >= n


def test_share_zero_keeps_everyone_on_live_and_one_hundred_sends_everyone_to_canary(canary: Canary) -> None:
    canary.set_share(0)
    connections = _by_connection(canary.run_sessions(40))
    assert {(stage, frozenset(v)) for stage, v in connections.values()} == {("live", frozenset({"1"}))}
    canary.set_share(100)
    connections = _by_connection(canary.run_sessions(40))
    assert {(stage, frozenset(v)) for stage, v in connections.values()} == {("canary", frozenset({"2"}))}


def test_a_missing_or_unreadable_share_means_live(canary: Canary) -> None:
    runs = _by_connection(canary.run_sessions(20))  # the key was never written: get() rejects
    assert {stage for stage, _ in runs.values()} == {"live"}
    canary.set_share(250)  # out of range: the router caps it at 100
    assert {stage for stage, _ in _by_connection(canary.run_sessions(5)).values()} == {"canary"}
    canary.set_share(-5)  # not a decimal integer: 0
    assert {stage for stage, _ in _by_connection(canary.run_sessions(5)).values()} == {"live"}


def test_a_canary_connection_is_called_back_and_fanned_out_to_on_its_own_stage(canary: Canary) -> None:
    stack = canary.stack
    canary.set_share(100)
    with stack.client("live") as ws:
        assert request(ws, action="subscribe", channel="price:eth") == [
            {"type": "subscribed", "channel": "price:eth"}
        ]
        [(connection_id, runs)] = canary.seen.snapshot().items()
        assert stack.gateway.stage_of(connection_id) == "canary"
        # The function registered the endpoint it derived from the request context: the canary stage's.
        import redis

        from service import keys

        endpoint = redis.Redis.from_url(stack.redis_url).hget(keys.conn_key(connection_id), "endpoint")
        assert endpoint == f"https://{stack.gateway.management.domain_name}/canary".encode()
        # The fan-out (live's function on the events queue) posts to the connection's own stage.
        sent = stack.publish(stack.account.events_url, channel="price:eth", payload={"price": 1.5})
        frame = recv_json(ws)
        assert frame["type"] == "event" and frame["ts"] == sent["ts"]
        # The operator's client reaches it through the canary stage's plain endpoint too.
        api = boto3.client("apigatewaymanagementapi", endpoint_url=stack.urls.management["canary"])
        api.post_to_connection(ConnectionId=connection_id, Data=b'{"type":"hello"}')
        assert recv_json(ws) == {"type": "hello"}
    assert {r[3] for r in runs} == {"2"}


def test_api_gateway_metrics_per_stage(canary: Canary) -> None:
    canary.set_share(100)
    canary.run_sessions(3)
    canary.set_share(0)
    canary.run_sessions(2)
    canary.stack.recorder.flush()
    cloudwatch = boto3.client("cloudwatch")
    from datetime import UTC, datetime, timedelta

    def total(stage: str, metric: str, statistic: str = "Sum") -> float:
        answer = cloudwatch.get_metric_statistics(
            Namespace=API_NAMESPACE,
            MetricName=metric,
            Dimensions=[{"Name": "ApiId", "Value": "localws"}, {"Name": "Stage", "Value": stage}],
            StartTime=datetime.now(UTC) - timedelta(minutes=5),
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=600,
            Statistics=[statistic],
        )
        return sum(point[statistic] for point in answer["Datapoints"])

    assert (total("canary", "ConnectCount"), total("live", "ConnectCount")) == (3, 2)
    # A ping in, its pong out through @connections.
    assert (total("canary", "MessageCount"), total("live", "MessageCount")) == (6, 4)
    assert total("canary", "IntegrationError") == 0
    assert total("canary", "IntegrationLatency", "SampleCount") == 3 * 3  # $connect, ping, $disconnect
    # Lambda's own: the canary stage's invocations are the green alias's, per executed version.
    connect = canary.stack.gateway.runtime.function_name("connect")
    answer = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Invocations",
        Dimensions=[
            {"Name": "FunctionName", "Value": connect},
            {"Name": "Resource", "Value": f"{connect}:green"},
            {"Name": "ExecutedVersion", "Value": "2"},
        ],
        StartTime=datetime.now(UTC) - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=600,
        Statistics=["Sum"],
    )
    assert sum(point["Sum"] for point in answer["Datapoints"]) == 3


def test_drain_finds_and_closes_exactly_the_canary_connections(canary: Canary) -> None:
    # DrainCanary's own scan and close (tasks/drain_canary.py), with the endpoint the sandbox gives
    # it: the canary stage's callback URL, as the functions registered it (https, local CA).
    import redis
    from websockets.exceptions import ConnectionClosed

    from tasks import drain_canary

    stack = canary.stack
    r = redis.Redis.from_url(stack.redis_url)
    canary.set_share(100)
    with stack.client("live") as on_canary:
        assert fence(on_canary) == []
        canary.set_share(0)
        with stack.client("live") as on_live:
            assert fence(on_live) == []
            endpoint = stack.urls.callback["canary"]
            [found] = drain_canary.canary_connections(r, endpoint)
            assert stack.gateway.stage_of(found) == "canary"
            api = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)
            assert drain_canary.close(api, r, found) == "closed"
            with pytest.raises(ConnectionClosed):
                on_canary.recv(timeout=10)
            assert eventually(lambda: list(drain_canary.canary_connections(r, endpoint)) == [])
            assert drain_canary.close(api, r, found) == "gone"
            assert fence(on_live) == []  # the live connection is untouched
