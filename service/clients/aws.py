"""boto3 clients, created once per container and reused (creation costs tens of ms)."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_lock = threading.Lock()
_clients: dict[tuple[str, str | None], Any] = {}

# Short timeouts: every caller is on a latency-sensitive path with its own retry policy.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


def client(service: str, endpoint_url: str | None = None) -> Any:
    key = (service, endpoint_url)
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = boto3.client(service, endpoint_url=endpoint_url, config=_CONFIG)
            _clients[key] = found
        return found


def reset() -> None:
    with _lock:
        _clients.clear()
