"""Posting frames to WebSocket clients through API Gateway's @connections API.

One `apigatewaymanagementapi` client per callback endpoint (a connection's stage), cached
for the container. Retries are ours, not botocore's: throttling (429) is retried with
jittered exponential back-off; GoneException is final and reported so the caller can drop
the connection.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

PostOutcome = Literal["sent", "gone", "failed"]

THROTTLE_CODES = frozenset({"LimitExceededException", "TooManyRequestsException", "ThrottlingException"})
MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 1.0

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_rng = random.SystemRandom()


def management_client(endpoint_url: str, pool_size: int = 32) -> Any:
    with _lock:
        found = _clients.get(endpoint_url)
        if found is None:
            found = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=endpoint_url,
                config=Config(
                    connect_timeout=2,
                    read_timeout=5,
                    retries={"mode": "standard", "max_attempts": 1},
                    max_pool_connections=pool_size,
                ),
            )
            _clients[endpoint_url] = found
        return found


def backoff_seconds(attempt: int) -> float:
    """Full-jitter exponential back-off for attempt 1, 2, ..."""
    return _rng.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def post(endpoint_url: str, connection_id: str, data: bytes, pool_size: int = 32) -> tuple[PostOutcome, str]:
    """Send one frame; returns the outcome and, when not sent, the reason."""
    client = management_client(endpoint_url, pool_size)
    reason = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            client.post_to_connection(ConnectionId=connection_id, Data=data)
            return "sent", ""
        # GoneException subclasses ClientError: it must be caught first.
        except client.exceptions.GoneException:
            return "gone", "GoneException"
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            reason = code
            if code not in THROTTLE_CODES and status < 500:
                return "failed", code
        except BotoCoreError as exc:
            reason = type(exc).__name__
        if attempt < MAX_ATTEMPTS:
            time.sleep(backoff_seconds(attempt))
    return "failed", reason


def reset() -> None:
    with _lock:
        _clients.clear()
