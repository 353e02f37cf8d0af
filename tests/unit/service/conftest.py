"""Fixtures of the service's unit tests: moto, the real Redis server, a recording @connections API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from moto import mock_aws

from orchestrator.gateway.management import ManagementApi, PostResult
from service.clients import aws as aws_clients
from service.clients import connections as posting
from service.logic import authorizer
from service.redis_client import reset_clients
from service.settings import use_env
from tests.support.moto_service import ServiceAccount, provision


class RecordingHub:
    """Connections that exist only as inboxes; `gone` ids answer 410, `busy` counts answer 429."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inbox: dict[str, list[bytes]] = {}
        self.busy: dict[str, int] = {}
        self.gone: set[str] = set()

    def open(self, *ids: str) -> None:
        with self.lock:
            for i in ids:
                self.inbox.setdefault(i, [])

    def post(self, connection_id: str, data: bytes) -> PostResult:
        with self.lock:
            if connection_id in self.gone or connection_id not in self.inbox:
                return "gone"
            if self.busy.get(connection_id, 0) > 0:
                self.busy[connection_id] -= 1
                return "busy"
            self.inbox[connection_id].append(data)
            return "ok"

    def describe(self, connection_id: str) -> dict[str, Any] | None:
        return {"connectedAt": "2025-01-01T00:00:00Z"} if connection_id in self.inbox else None

    def disconnect(self, connection_id: str) -> bool:
        with self.lock:
            return self.inbox.pop(connection_id, None) is not None


@pytest.fixture
def hub() -> Iterator[tuple[RecordingHub, str]]:
    recording = RecordingHub()
    api = ManagementApi(recording, ["live", "preview"]).start()
    try:
        yield recording, api.endpoint("live")
    finally:
        api.stop()


@pytest.fixture
def account() -> Iterator[ServiceAccount]:
    with mock_aws():
        aws_clients.reset()
        posting.reset()
        authorizer.CACHE.clear()
        yield provision()
        aws_clients.reset()
        authorizer.CACHE.clear()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
    reset_clients()


@pytest.fixture
def env(account: ServiceAccount, redis_url: str, hub: tuple[RecordingHub, str]) -> Iterator[dict[str, str]]:
    values = {**account.base_env(redis_url), "CONNECTIONS_ENDPOINT_URL": hub[1]}
    with use_env(values):
        yield values


class Context:
    function_name = "rt-test"
    function_version = "1"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:rt-test:live"
    memory_limit_in_mb = 256
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/rt-test"
    log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 5000


@pytest.fixture
def context() -> Context:
    return Context()
