"""The $connect REQUEST authorizer: API key and origin header checks, IAM policy out.

Keys come from Secrets Manager (secret JSON `{"api_key": "..."}`): both AWSCURRENT and
AWSPREVIOUS are accepted so clients keep working through a rotation. Values are cached for
SECRET_CACHE_SECONDS (60 s); a miss on a cache older than REFRESH_ON_MISS_SECONDS reloads
once, so a freshly rotated key works at once without letting bad keys hammer Secrets Manager.
Comparison is constant-time against every candidate. The key itself never leaves this
module: the principal is a one-way fingerprint of it, and deny reasons are logged without it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from service.clients import aws

STAGES: tuple[str, ...] = ("AWSCURRENT", "AWSPREVIOUS")
API_KEY_HEADER = "x-api-key"
API_KEY_QUERY = "api_key"
ORIGIN_HEADER = "x-origin-verify"
REFRESH_ON_MISS_SECONDS = 5.0
ANONYMOUS = "anonymous"  # the principal of a request that presented no key


class SecretFormatError(ValueError):
    """A secret's value does not have the expected JSON field."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    principal_id: str
    key_stage: str | None = None


@dataclass
class _Entry:
    values: dict[str, str]
    loaded_at: float


class SecretCache:
    """Per-container cache of the staged values of a secret's JSON field."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}

    def values(
        self, secret_arn: str, field: str, ttl: float, *, refresh_if_older_than: float | None = None
    ) -> dict[str, str]:
        now = self._clock()
        with self._lock:
            entry = self._entries.get((secret_arn, field))
        fresh = entry is not None and now - entry.loaded_at < ttl
        if fresh and refresh_if_older_than is not None and entry is not None:
            fresh = now - entry.loaded_at < refresh_if_older_than
        if entry is not None and fresh:
            return entry.values
        values = _load_staged(secret_arn, field)
        with self._lock:
            self._entries[(secret_arn, field)] = _Entry(values, self._clock())
        return values

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _load_staged(secret_arn: str, field: str) -> dict[str, str]:
    sm = aws.client("secretsmanager")
    values: dict[str, str] = {}
    for stage in STAGES:
        try:
            raw = sm.get_secret_value(SecretId=secret_arn, VersionStage=stage)["SecretString"]
        except ClientError as exc:
            # A secret that was never rotated has no AWSPREVIOUS version.
            if stage != "AWSCURRENT" and exc.response["Error"]["Code"] == "ResourceNotFoundException":
                continue
            raise
        try:
            value = json.loads(raw)[field]
        except (ValueError, KeyError, TypeError):
            raise SecretFormatError(
                f"secret {secret_arn} ({stage}) is not JSON with a '{field}' field"
            ) from None
        if not isinstance(value, str) or not value:
            raise SecretFormatError(f"secret {secret_arn} ({stage}) has an empty or non-text '{field}'")
        values[stage] = value
    return values


CACHE = SecretCache()


def fingerprint(api_key: str) -> str:
    """A stable, non-reversible id for a key (logs, principal id, metrics)."""
    return "key-" + hashlib.sha256(b"realtime-analytics/api-key/" + api_key.encode()).hexdigest()[:20]


def _lower(mapping: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (mapping or {}).items() if v is not None}


def _match(presented: str, candidates: Mapping[str, str]) -> str | None:
    """Stage of the matching candidate; every candidate is compared (constant time each)."""
    matched = None
    for stage, value in candidates.items():
        if hmac.compare_digest(presented.encode(), value.encode()):
            matched = matched or stage
    return matched


def presented_key(event: Mapping[str, Any]) -> str | None:
    key = _lower(event.get("headers")).get(API_KEY_HEADER)
    if not key:
        key = (event.get("queryStringParameters") or {}).get(API_KEY_QUERY)
    return key or None


def decide(
    event: Mapping[str, Any],
    api_keys_secret_arn: str,
    origin_secret_arn: str | None,
    ttl: float,
    cache: SecretCache = CACHE,
) -> Decision:
    """Allow or deny one $connect request.

    A request without a key is denied like one with a wrong key (HTTP 403). It is not raised as
    `Unauthorized` (HTTP 401): that is a function error in Lambda's `Errors` metric, so any
    anonymous client on `live` would trip the release guard and roll back a healthy release."""
    headers = _lower(event.get("headers"))
    key = presented_key(event)
    if key is None:
        return Decision(
            False, f"no API key in the {API_KEY_HEADER} header or {API_KEY_QUERY} query", ANONYMOUS
        )
    principal = fingerprint(key)
    if origin_secret_arn:
        origin = headers.get(ORIGIN_HEADER)
        if not origin:
            return Decision(
                False, f"missing {ORIGIN_HEADER} header (request did not come through the edge)", principal
            )
        origins = cache.values(origin_secret_arn, "header_value", ttl)
        if _match(origin, origins) is None:
            origins = cache.values(
                origin_secret_arn, "header_value", ttl, refresh_if_older_than=REFRESH_ON_MISS_SECONDS
            )
            if _match(origin, origins) is None:
                return Decision(False, f"{ORIGIN_HEADER} header does not match the origin secret", principal)
    stage = _match(key, cache.values(api_keys_secret_arn, "api_key", ttl))
    if stage is None:
        stage = _match(
            key,
            cache.values(api_keys_secret_arn, "api_key", ttl, refresh_if_older_than=REFRESH_ON_MISS_SECONDS),
        )
    if stage is None:
        return Decision(False, "API key matches neither the current nor the previous key", principal)
    return Decision(True, f"API key matches {stage}", principal, stage)


def policy(decision: Decision, method_arn: str) -> dict[str, Any]:
    """The IAM policy document API Gateway expects back from a REQUEST authorizer."""
    result: dict[str, Any] = {
        "principalId": decision.principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow" if decision.allowed else "Deny",
                    "Resource": method_arn,
                }
            ],
        },
    }
    if decision.allowed:
        result["context"] = {"keyFingerprint": decision.principal_id, "keyStage": decision.key_stage or ""}
    return result
