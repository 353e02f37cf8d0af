"""synthetic_checks against the local gateway running the real service handlers (moto + Redis).

One sandbox for the module: every service function has three published versions (healthy,
dropping 60% of fan-out posts, adding 1.2 s to every invocation); each test points the
`green` alias (the preview stage) at the version it needs, as DeployGreen would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import redis
from moto import mock_aws

from orchestrator.gateway import Gateway, LambdaRuntime, QueueBinding
from orchestrator.sandbox.redis_server import RedisServer
from service.clients import aws as aws_clients
from service.clients import connections as posting
from service.logic import authorizer
from service.redis_client import reset_clients
from tasks import synthetic_checks
from tasks.errors import GreenUnhealthy
from tests.support.moto_service import ServiceAccount, create_functions, provision, set_weights

HEALTHY, DROPPING, SLOW = "1", "2", "3"


@dataclass
class Sandbox:
    account: ServiceAccount
    gateway: Gateway
    preview_url: str
    live_url: str
    redis_url: str

    def green(self, version: str) -> None:
        for name in self.account.function_names.values():
            set_weights(name, "green", version)


class Context:
    function_name = "synthetic-checks"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:synthetic-checks"
    aws_request_id = "req-synthetic"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture(scope="module")
def sandbox(redis_server: RedisServer) -> Iterator[Sandbox]:
    with mock_aws():
        aws_clients.reset()
        posting.reset()
        authorizer.CACHE.clear()
        account = provision()
        base = account.base_env(redis_server.url)
        create_functions(
            account,
            [base, {**base, "FAULT_DROP_RATE": "0.6"}, {**base, "FAULT_DELAY_MS": "1200"}],
        )
        runtime = LambdaRuntime(boto3.client("lambda"), account.function_names, alias_cache_seconds=0.0)
        gateway = Gateway(
            runtime,
            sqs=boto3.client("sqs"),
            queue_bindings=[
                QueueBinding(account.preview_url, "green"),
                QueueBinding(account.events_url, "live"),
            ],
        )
        urls = gateway.start()
        try:
            yield Sandbox(
                account, gateway, urls.websocket["preview"], urls.websocket["live"], redis_server.url
            )
        finally:
            gateway.stop()
            aws_clients.reset()
            posting.reset()
            authorizer.CACHE.clear()
            reset_clients()


@pytest.fixture
def task_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    monkeypatch.setenv("PREVIEW_WS_URL", sandbox.preview_url)
    monkeypatch.setenv("API_KEYS_SECRET_ARN", sandbox.account.api_keys_arn)
    monkeypatch.setenv("PREVIEW_EVENTS_QUEUE_URL", sandbox.account.preview_url)
    monkeypatch.setenv("SYNTHETIC_CONNECT_RATE", "200")
    monkeypatch.setenv("SYNTHETIC_MESSAGE_INTERVAL_MS", "50")
    return sandbox


def check(**overrides: Any) -> dict[str, Any]:
    payload = {
        "release_id": "rel-synthetic",
        "environment": "staging",
        "clients": 8,
        "messages": 4,
        "p99_latency_ms": 1000,
        "min_success_rate": 1.0,
        **overrides,
    }
    return synthetic_checks.handler(payload, Context())


def test_passes_against_a_healthy_green(task_env: Sandbox) -> None:
    task_env.green(HEALTHY)
    registry = redis.Redis.from_url(task_env.redis_url)
    # The session's server is shared: only the connections this run opens must be gone after it.
    before = set(registry.scan_iter(match="conn:*"))
    # A generous threshold: the sandbox shares its CPUs; the slow version below adds 1.2 s to
    # every invocation and is judged against 1 s.
    out = check(p99_latency_ms=3000)
    assert out["passed"] is True
    assert out["clients"] == 8 and out["messages_expected"] == 32 and out["messages_received"] == 32
    assert out["success_rate"] == 1.0
    assert out["unauthorized_refused"] is True
    assert out["errors"] == {}
    assert 0 < out["latency_ms"]["p50"] <= out["latency_ms"]["p95"] <= out["latency_ms"]["p99"] <= 3000
    # Unsubscribes are acknowledged before the close: no synthetic subscription is left.
    assert list(registry.scan_iter(match="chan:synthetic:*")) == []
    # $disconnect runs after each close (asynchronously, as in API Gateway): the registry empties.
    assert wait_until(lambda: set(registry.scan_iter(match="conn:*")) <= before), (
        set(registry.scan_iter(match="conn:*")) - before
    )
    registry.close()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_fails_with_a_summary_when_green_drops_messages(task_env: Sandbox) -> None:
    task_env.green(DROPPING)
    with pytest.raises(GreenUnhealthy) as caught:
        check(p99_latency_ms=1000)
    summary = str(caught.value)
    assert "\n" not in summary
    assert "success rate" in summary and "< 1" in summary and "deliveries" in summary
    assert "clients 8/8 connected" in summary


def test_fails_with_a_summary_when_green_is_slow(task_env: Sandbox) -> None:
    task_env.green(SLOW)
    with pytest.raises(GreenUnhealthy, match=r"p99 latency \d+ ms > 1000 ms") as caught:
        check(clients=3, messages=2, p99_latency_ms=1000, min_success_rate=0.0)
    assert "success rate" not in str(caught.value).split("|")[0]


def test_live_is_not_touched_by_the_preview_run(task_env: Sandbox) -> None:
    """Synthetic events go through the preview queue only: the live queue stays empty."""
    task_env.green(HEALTHY)
    check(clients=2, messages=2)
    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=task_env.account.events_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attrs == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
