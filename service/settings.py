"""The one accessor of the service's configuration.

Code in `service/` reads configuration through `env()` and `settings()` only, never
`os.environ` directly. In Lambda that is the process environment. The local gateway runs many
published versions in one process at the same time; it binds each invocation's environment
(that version's variables) with `use_env()`, which lives in a context variable, so concurrent
invocations in threads or asyncio tasks never see each other's configuration.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_invocation_env: ContextVar[Mapping[str, str] | None] = ContextVar("service_invocation_env", default=None)


class SettingsError(ValueError):
    """A configuration variable is missing or malformed."""


def env() -> Mapping[str, str]:
    bound = _invocation_env.get()
    return bound if bound is not None else os.environ


@contextmanager
def use_env(mapping: Mapping[str, str]) -> Iterator[None]:
    """Bind an invocation's environment for the current thread / task."""
    token = _invocation_env.set(dict(mapping))
    try:
        yield
    finally:
        _invocation_env.reset(token)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    api_keys_secret_arn: str | None = Field(default=None, alias="API_KEYS_SECRET_ARN")
    origin_secret_arn: str | None = Field(default=None, alias="ORIGIN_SECRET_ARN")
    alerts_topic_arn: str | None = Field(default=None, alias="ALERTS_TOPIC_ARN")
    connections_endpoint_url: str | None = Field(default=None, alias="CONNECTIONS_ENDPOINT_URL")
    cache_schema_version: int = Field(default=1, ge=0, alias="CACHE_SCHEMA_VERSION")
    service_version: str = Field(default="unknown", alias="SERVICE_VERSION")
    max_subscriptions: int = Field(default=50, ge=1, le=1000, alias="MAX_SUBSCRIPTIONS")
    snapshot_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60, alias="SNAPSHOT_TTL_SECONDS")
    secret_cache_seconds: float = Field(default=60.0, ge=0, alias="SECRET_CACHE_SECONDS")
    fanout_concurrency: int = Field(default=32, ge=1, le=256, alias="FANOUT_CONCURRENCY")
    # Channels with more subscribers than this are split into delivery shards of at most this
    # many connections, queued back for parallel invocations (service.logic.fanout).
    fanout_shard_size: int = Field(default=500, ge=1, le=10_000, alias="FANOUT_SHARD_SIZE")
    # Split only channels with more subscribers than this (0: the shard size). Set where the
    # event source mapping's batching window would hold back a split that fills no whole batch.
    fanout_split_above: int = Field(default=0, ge=0, alias="FANOUT_SPLIT_ABOVE")
    # How long SQS may hand the same message out again (visibility timeout x receives before the
    # DLQ): how long the fan-out remembers a split message and a delivered shard.
    fanout_redelivery_window_seconds: int = Field(
        default=900, ge=60, le=14 * 24 * 3600, alias="FANOUT_REDELIVERY_WINDOW_SECONDS"
    )
    # The event queues; a split event's shards go back to the queue it came from.
    events_queue_url: str | None = Field(default=None, alias="EVENTS_QUEUE_URL")
    preview_events_queue_url: str | None = Field(default=None, alias="PREVIEW_EVENTS_QUEUE_URL")
    fault_error_rate: float = Field(default=0.0, ge=0, le=1, alias="FAULT_ERROR_RATE")
    fault_delay_ms: int = Field(default=0, ge=0, le=60_000, alias="FAULT_DELAY_MS")
    fault_drop_rate: float = Field(default=0.0, ge=0, le=1, alias="FAULT_DROP_RATE")
    # Comma-separated catalog keys the error rate and delay apply to; empty means every function.
    fault_functions: str = Field(default="", alias="FAULT_FUNCTIONS")
    alert_rules: list[dict[str, Any]] | None = Field(default=None, alias="ALERT_RULES")

    @field_validator("alert_rules", mode="before")
    @classmethod
    def _parse_rules(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"ALERT_RULES is not valid JSON: {exc}") from None
        return value

    @field_validator(
        "api_keys_secret_arn",
        "origin_secret_arn",
        "alerts_topic_arn",
        "connections_endpoint_url",
        "events_queue_url",
        "preview_events_queue_url",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


@lru_cache(maxsize=64)
def _parse(items: frozenset[tuple[str, str]]) -> Settings:
    try:
        return Settings.model_validate(dict(items))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"invalid service configuration: {problems}") from None


def settings() -> Settings:
    """Typed settings of the current environment (parsed once per distinct environment)."""
    current = env()
    relevant = frozenset((k, v) for k, v in current.items() if k.isupper() and k in _FIELD_ALIASES)
    return _parse(relevant)


_FIELD_ALIASES = frozenset(f.alias for f in Settings.model_fields.values() if f.alias)
