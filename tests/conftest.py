"""Fixtures shared by every test package: fake AWS credentials, a real Redis server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Never reach real AWS from tests: fake credentials and a fixed region before boto3 is used.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",  # noqa: S105 - moto's fake credentials
    AWS_SECURITY_TOKEN="testing",  # noqa: S105
    AWS_SESSION_TOKEN="testing",  # noqa: S105
    AWS_DEFAULT_REGION="eu-west-1",
    AWS_REGION="eu-west-1",
    POWERTOOLS_METRICS_NAMESPACE="RealtimeAnalytics",
    POWERTOOLS_SERVICE_NAME="test",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_DEV="false",
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

from orchestrator.testing.redis_server import RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real Redis/Valkey server for the session; tests isolate themselves by key prefix or flushdb."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url
