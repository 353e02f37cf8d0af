"""The one Redis client module shared by the service and the orchestrator's tasks.

Created once per container (Lambda reuses it across invocations). In AWS the cache requires
TLS: the client refuses anything below TLS 1.3 (ElastiCache accepts 1.2 as its minimum, so the
stricter floor is enforced here, on our side of the connection). Timeouts are always set and
connection errors are retried with exponential back-off.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from redis.retry import Retry

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], redis.Redis] = {}


class RedisConfigError(ValueError):
    """The Redis settings in the environment are incomplete or contradictory."""


def _auth_token(secret_arn: str | None) -> str | None:
    if not secret_arn:
        return None
    import boto3

    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    token = parsed.get("token") or parsed.get("password") if isinstance(parsed, dict) else None
    if not token:
        raise RedisConfigError(f"secret {secret_arn} has no 'token' field")
    return str(token)


def settings_from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Read REDIS_URL (sandbox) or REDIS_HOST/REDIS_PORT/REDIS_TLS/REDIS_AUTH_SECRET_ARN (AWS)."""
    env = dict(os.environ if env is None else env)
    timeout = float(env.get("REDIS_TIMEOUT_SECONDS", "2"))
    if env.get("REDIS_URL"):
        return {"url": env["REDIS_URL"], "timeout": timeout}
    host = env.get("REDIS_HOST")
    if not host:
        raise RedisConfigError("set REDIS_URL, or REDIS_HOST with REDIS_PORT (and REDIS_TLS)")
    tls = env.get("REDIS_TLS", "true").lower() != "false"
    return {
        "host": host,
        "port": int(env.get("REDIS_PORT", "6379")),
        "tls": tls,
        "ca_file": env.get("REDIS_CA_FILE"),
        "auth_secret_arn": env.get("REDIS_AUTH_SECRET_ARN"),
        "timeout": timeout,
    }


def build_client(settings: dict[str, Any]) -> redis.Redis:
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=3)
    common: dict[str, Any] = {
        "socket_timeout": settings["timeout"],
        "socket_connect_timeout": settings["timeout"],
        "retry": retry,
        "retry_on_error": [ConnectionError, TimeoutError, BusyLoadingError],
        "health_check_interval": 30,
    }
    if "url" in settings:
        return redis.Redis.from_url(settings["url"], **common)
    kwargs: dict[str, Any] = {"host": settings["host"], "port": settings["port"], **common}
    token = _auth_token(settings.get("auth_secret_arn"))
    if token:
        kwargs["password"] = token
    if settings["tls"]:
        kwargs.update(
            ssl=True,
            ssl_cert_reqs=ssl.CERT_REQUIRED,
            ssl_check_hostname=True,
            ssl_min_version=ssl.TLSVersion.TLSv1_3,
            ssl_ca_certs=settings.get("ca_file"),
        )
    return redis.Redis(**kwargs)


def get_redis(env: dict[str, str] | None = None) -> redis.Redis:
    """The container's client for the current settings (created on first use)."""
    settings = settings_from_env(env)
    key = tuple(sorted((k, str(v)) for k, v in settings.items()))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = build_client(settings)
            _clients[key] = client
        return client


def reset_clients() -> None:
    """Drop cached clients (tests, and the sandbox when it restarts its server)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
