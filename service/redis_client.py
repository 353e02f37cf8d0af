"""The one Redis client module shared by the service and the orchestrator's tasks.

Created once per container (Lambda reuses it across invocations). In AWS the cache requires
TLS: the client refuses anything below TLS 1.3 (ElastiCache accepts 1.2 as its minimum, so the
stricter floor is enforced here, on our side of the connection) and verifies the server's
certificate and host name. Plaintext is accepted only for a loopback server (the sandbox).
Timeouts are always set and connection errors are retried with exponential back-off and
jitter.

The AUTH token is read from Secrets Manager when a connection opens (cached for
REDIS_AUTH_CACHE_SECONDS, default 300), so connections opened after a token rotation use the
new token without a cold start.
"""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.credentials import CredentialProvider
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from redis.retry import Retry

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], redis.Redis] = {}

TLS_MIN_VERSION = ssl.TLSVersion.TLSv1_3
RETRIES = 3


class RedisConfigError(ValueError):
    """The Redis settings in the environment are incomplete or contradictory."""


class SecretsManagerToken(CredentialProvider):
    """AUTH token from a Secrets Manager secret (JSON field `token` or `password`, or the raw
    string), re-read at most every `cache_seconds` when a new connection authenticates."""

    def __init__(self, secret_arn: str, cache_seconds: float = 300.0) -> None:
        self.secret_arn = secret_arn
        self.cache_seconds = cache_seconds
        self._token: str | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()

    def get_credentials(self) -> tuple[str]:
        with self._lock:
            if self._token is None or time.monotonic() - self._fetched >= self.cache_seconds:
                self._token = self._read()
                self._fetched = time.monotonic()
            return (self._token,)

    def _read(self) -> str:
        import boto3

        value = boto3.client("secretsmanager").get_secret_value(SecretId=self.secret_arn)["SecretString"]
        try:
            parsed = json.loads(value)
        except ValueError:
            return str(value)
        if not isinstance(parsed, dict):
            return str(value)
        token = parsed.get("token") or parsed.get("password")
        if not token:
            raise RedisConfigError(f"secret {self.secret_arn} has no 'token' field")
        return str(token)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _float(env: dict[str, str], name: str, default: str) -> float:
    raw = env.get(name, default)
    try:
        value = float(raw)
    except ValueError:
        raise RedisConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise RedisConfigError(f"{name} must be positive, got {raw!r}")
    return value


def settings_from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Read REDIS_URL (sandbox) or REDIS_HOST/REDIS_PORT/REDIS_TLS/REDIS_AUTH_SECRET_ARN (AWS)."""
    env = dict(os.environ if env is None else env)
    timeout = _float(env, "REDIS_TIMEOUT_SECONDS", "2")
    if env.get("REDIS_URL"):
        url = env["REDIS_URL"]
        parts = urlsplit(url)
        if parts.scheme == "redis" and not _is_loopback(parts.hostname or ""):
            raise RedisConfigError(
                f"REDIS_URL {parts.scheme}://{parts.hostname}: plaintext Redis is allowed on loopback only; use rediss://"
            )
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise RedisConfigError(f"REDIS_URL scheme must be redis, rediss or unix, got {parts.scheme!r}")
        return {"url": url, "timeout": timeout}
    host = env.get("REDIS_HOST")
    if not host:
        raise RedisConfigError("set REDIS_URL, or REDIS_HOST with REDIS_PORT (and REDIS_TLS)")
    if env.get("REDIS_TLS", "true").lower() != "true":
        raise RedisConfigError(f"REDIS_TLS={env.get('REDIS_TLS')!r}: TLS is required for REDIS_HOST {host}")
    try:
        port = int(env.get("REDIS_PORT", "6379"))
    except ValueError:
        raise RedisConfigError(f"REDIS_PORT must be an integer, got {env.get('REDIS_PORT')!r}") from None
    return {
        "host": host,
        "port": port,
        "tls": True,
        "ca_file": env.get("REDIS_CA_FILE"),
        "auth_secret_arn": env.get("REDIS_AUTH_SECRET_ARN"),
        "auth_cache_seconds": _float(env, "REDIS_AUTH_CACHE_SECONDS", "300"),
        "timeout": timeout,
    }


def _tls_options(ca_file: str | None) -> dict[str, Any]:
    return {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_check_hostname": True,
        "ssl_min_version": TLS_MIN_VERSION,
        "ssl_ca_certs": ca_file,
    }


def build_client(settings: dict[str, Any]) -> redis.Redis:
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=RETRIES)
    common: dict[str, Any] = {
        "socket_timeout": settings["timeout"],
        "socket_connect_timeout": settings["timeout"],
        "socket_keepalive": True,
        "retry": retry,
        "retry_on_error": [ConnectionError, TimeoutError, BusyLoadingError],
        "health_check_interval": 30,
    }
    if "url" in settings:
        if settings["url"].startswith("rediss://"):
            common.update(_tls_options(None))
        return redis.Redis.from_url(settings["url"], **common)
    kwargs: dict[str, Any] = {"host": settings["host"], "port": settings["port"], "ssl": True, **common}
    kwargs.update(_tls_options(settings.get("ca_file")))
    if settings.get("auth_secret_arn"):
        kwargs["credential_provider"] = SecretsManagerToken(
            settings["auth_secret_arn"], float(settings.get("auth_cache_seconds", 300))
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
