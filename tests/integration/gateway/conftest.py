"""A whole local stack per test: moto (Lambda versions/aliases, SQS, SNS, Secrets Manager,
CloudWatch), the real Redis server, and the gateway with its SQS pollers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from websockets.sync.client import ClientConnection, connect

from orchestrator.gateway import Gateway, GatewayUrls, LambdaRuntime, MetricRecorder, QueueBinding
from service.clients import aws as aws_clients
from service.clients import connections as posting
from service.logic import authorizer
from service.redis_client import reset_clients
from tests.support.moto_service import API_KEY, ServiceAccount, create_functions, provision


@dataclass
class Stack:
    account: ServiceAccount
    gateway: Gateway
    urls: GatewayUrls
    recorder: MetricRecorder
    redis_url: str

    def client(self, stage: str = "live", key: str | None = API_KEY, **kwargs: Any) -> ClientConnection:
        headers = {"x-api-key": key} if key else {}
        return connect(self.urls.websocket[stage], additional_headers=headers, open_timeout=10, **kwargs)

    def publish(self, queue_url: str, **event: Any) -> dict[str, Any]:
        body = {"type": "update", "ts": time.time() * 1000, **event}
        boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
        return body


def recv_json(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def request(ws: ClientConnection, **message: Any) -> list[dict[str, Any]]:
    """Send a message, then a ping; return the frames before the pong (order is kept per connection)."""
    ws.send(json.dumps(message))
    ws.send(json.dumps({"action": "ping", "request_id": "__fence__"}))
    frames: list[dict[str, Any]] = []
    while True:
        frame = recv_json(ws)
        if frame.get("type") == "pong" and frame.get("request_id") == "__fence__":
            return frames
        frames.append(frame)


def fence(ws: ClientConnection) -> list[dict[str, Any]]:
    """Frames that arrived before a ping's answer (empty: nothing was pending)."""
    ws.send(json.dumps({"action": "ping", "request_id": "__fence__"}))
    frames: list[dict[str, Any]] = []
    while True:
        frame = recv_json(ws)
        if frame.get("type") == "pong" and frame.get("request_id") == "__fence__":
            return frames
        frames.append(frame)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait for a condition that another thread makes true (not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def build_stack(
    redis_url: str, extra_env: dict[str, str] | None = None, **gateway_kwargs: Any
) -> tuple[Stack, Callable[[], None]]:
    """`extra_env` is added to both versions' environment (e.g. FANOUT_SHARD_SIZE)."""
    account = provision(visibility_timeout=0, max_receive_count=1)
    base = {**account.base_env(redis_url), **(extra_env or {})}
    green = {**base, "SERVICE_VERSION": "2.0.0", "CACHE_SCHEMA_VERSION": "2"}
    names = create_functions(account, [base, green])
    recorder = MetricRecorder(boto3.client("cloudwatch"), flush_seconds=0.5)
    runtime = LambdaRuntime(boto3.client("lambda"), names, recorder=recorder, alias_cache_seconds=0)
    gateway = Gateway(
        runtime,
        sqs=boto3.client("sqs"),
        queue_bindings=[QueueBinding(account.events_url, "live"), QueueBinding(account.preview_url, "green")],
        recorder=recorder,
        **gateway_kwargs,
    )
    urls = gateway.start()
    return Stack(account, gateway, urls, recorder, redis_url), gateway.stop


@pytest.fixture
def stack(redis_url: str) -> Iterator[Stack]:
    with mock_aws():
        aws_clients.reset()
        posting.reset()
        authorizer.CACHE.clear()
        built, stop = build_stack(redis_url)
        try:
            yield built
        finally:
            stop()
            aws_clients.reset()
            authorizer.CACHE.clear()
            reset_clients()
