"""The $connect authorizer against Secrets Manager in moto."""

from __future__ import annotations

import json

import boto3
import pytest

from service.handlers.authorizer import handler
from service.logic.authorizer import SecretCache, decide, fingerprint
from service.settings import use_env
from tests.support.moto_service import API_KEY, ORIGIN_VALUE, PREVIOUS_KEY
from tests.support.ws_events import METHOD_ARN, authorizer_event


def request(headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> dict:
    return authorizer_event(headers, query)


def effect(policy: dict) -> str:
    return policy["policyDocument"]["Statement"][0]["Effect"]


def test_current_key_in_header_is_allowed_with_a_fingerprint_principal(env, context) -> None:
    policy = handler(request({"X-Api-Key": API_KEY}), context)
    assert effect(policy) == "Allow"
    assert policy["policyDocument"]["Statement"][0]["Resource"] == METHOD_ARN
    assert policy["principalId"] == fingerprint(API_KEY) != API_KEY
    assert policy["context"] == {"keyFingerprint": fingerprint(API_KEY), "keyStage": "AWSCURRENT"}


def test_previous_key_in_query_is_allowed_during_rotation_grace(env, context) -> None:
    policy = handler(request(query={"api_key": PREVIOUS_KEY}), context)
    assert effect(policy) == "Allow"
    assert policy["context"]["keyStage"] == "AWSPREVIOUS"


def test_wrong_key_is_denied_and_never_logged(env, context, caplog) -> None:
    secret = "wrong-key-that-must-not-appear-in-logs"
    policy = handler(request({"x-api-key": secret}), context)
    assert effect(policy) == "Deny"
    assert "context" not in policy
    denied = [rec for rec in caplog.records if rec.getMessage() == "connection denied"]
    assert len(denied) == 1 and "neither the current nor the previous" in denied[0].reason
    assert all(secret not in str(rec.__dict__) for rec in caplog.records)


def test_a_missing_key_is_denied_without_a_function_error(env, context, caplog) -> None:
    # Raising "Unauthorized" (a 401) would count in Lambda's Errors metric: any anonymous client on
    # `live` would trip the release guard. A Deny policy (a 403) is a successful invocation.
    policy = handler(request(), context)
    assert effect(policy) == "Deny" and policy["principalId"] == "anonymous"
    denied = [rec for rec in caplog.records if rec.getMessage() == "connection denied"]
    assert len(denied) == 1 and "no API key" in denied[0].reason


def test_origin_header_is_required_when_configured(env, account, context) -> None:
    with use_env({**env, "ORIGIN_SECRET_ARN": account.origin_arn}):
        assert effect(handler(request({"x-api-key": API_KEY}), context)) == "Deny"
        assert effect(handler(request({"x-api-key": API_KEY, "x-origin-verify": "nope"}), context)) == "Deny"
        ok = handler(request({"x-api-key": API_KEY, "x-origin-verify": ORIGIN_VALUE}), context)
        assert effect(ok) == "Allow"


def test_missing_configuration_is_an_error_naming_the_variable(env, context) -> None:
    with (
        use_env({k: v for k, v in env.items() if k != "API_KEYS_SECRET_ARN"}),
        pytest.raises(Exception, match="API_KEYS_SECRET_ARN"),
    ):
        handler(request({"x-api-key": API_KEY}), context)


def test_keys_are_cached_and_a_rotated_key_is_picked_up_on_a_miss(account) -> None:
    now = [1000.0]
    cache = SecretCache(clock=lambda: now[0])
    assert decide(request({"x-api-key": API_KEY}), account.api_keys_arn, None, 60, cache).allowed
    fresh = "brand-new-key-0123456789abcdefghijklmnopqrstuvwxyz"
    boto3.client("secretsmanager").put_secret_value(
        SecretId=account.api_keys_arn, SecretString=json.dumps({"api_key": fresh})
    )
    # Within the refresh-on-miss interval the cached keys stand: the new key is not yet known.
    now[0] += 1
    assert not decide(request({"x-api-key": fresh}), account.api_keys_arn, None, 60, cache).allowed
    assert decide(request({"x-api-key": API_KEY}), account.api_keys_arn, None, 60, cache).allowed
    # After it, a miss reloads: the new key is current, the old one previous, the oldest gone.
    now[0] += 10
    decision = decide(request({"x-api-key": fresh}), account.api_keys_arn, None, 60, cache)
    assert decision.allowed and decision.key_stage == "AWSCURRENT"
    assert (
        decide(request({"x-api-key": API_KEY}), account.api_keys_arn, None, 60, cache).key_stage
        == "AWSPREVIOUS"
    )
    assert not decide(request({"x-api-key": PREVIOUS_KEY}), account.api_keys_arn, None, 60, cache).allowed


def test_malformed_secret_is_reported_without_its_value(account) -> None:
    boto3.client("secretsmanager").put_secret_value(SecretId=account.api_keys_arn, SecretString="not-json")
    with pytest.raises(ValueError, match="is not JSON with a 'api_key' field") as info:
        decide(request({"x-api-key": API_KEY}), account.api_keys_arn, None, 60, SecretCache())
    assert "not-json" not in str(info.value)
