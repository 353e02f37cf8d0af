"""Alert rules, the key rotation function and fault injection."""

from __future__ import annotations

import importlib
import json
import random
import uuid

import boto3
import pytest
from pydantic import ValidationError

from service import catalog, faults, keys
from service.handlers import connect, rotate_api_key
from service.logic import alerts
from service.logic.rotation import RotationError
from service.models import Event
from service.settings import use_env
from tests.support.moto_service import API_KEY, PREVIOUS_KEY, drain
from tests.support.ws_events import connect_event


def ev(
    value: float, field: str = "price", channel: str = "price:eth", ts: float = 3_600_000.0, synthetic=False
) -> Event:
    return Event(channel=channel, type="u", payload={field: value}, ts=ts, synthetic=synthetic)


@pytest.mark.parametrize(
    ("kind", "threshold", "previous", "value", "fires"),
    [
        ("change_pct", 5, 100, 105, True),
        ("change_pct", 5, 100, 95.5, False),
        ("rise_pct", 5, 100, 94, False),
        ("drop_pct", 5, 100, 94, True),
        ("drop_pct", 5, 100, 106, False),
        ("above", 50, None, 50, True),
        ("below", 50, None, 51, False),
        ("change_pct", 5, 0, 10, False),  # no base to compare with
        ("change_pct", 5, None, 10, False),  # first event of the channel
    ],
)
def test_rule_kinds(kind, threshold, previous, value, fires) -> None:
    rule = alerts.AlertRule(id="r", channel_prefix="price:", field="price", kind=kind, threshold=threshold)
    found = alerts.evaluate((rule,), ev(value), ev(previous) if previous is not None else None)
    assert bool(found) is fires


def test_rules_skip_other_channels_missing_fields_and_synthetic_events() -> None:
    rule = alerts.AlertRule(id="r", channel_prefix="tvl:", field="tvl", kind="above", threshold=1)
    assert alerts.evaluate((rule,), ev(5, channel="price:eth"), None) == []
    assert alerts.evaluate((rule,), ev(5, field="other", channel="tvl:x"), None) == []
    assert alerts.evaluate((rule,), ev(5, field="tvl", channel="tvl:x", synthetic=True), None) == []
    assert len(alerts.evaluate((rule,), ev(5, field="tvl", channel="tvl:x"), None)) == 1


def test_rules_from_env_json_and_their_errors() -> None:
    raw = [
        {
            "id": "eth-high",
            "channel_prefix": "price:eth",
            "field": "price",
            "kind": "above",
            "threshold": 4000,
        }
    ]
    assert alerts.parse_rules(raw)[0].threshold == 4000
    assert alerts.parse_rules(None) == alerts.DEFAULT_RULES
    with pytest.raises(ValidationError, match="kind"):
        alerts.parse_rules([{**raw[0], "kind": "sideways"}])


def test_publish_deduplicates_per_window_and_returns_the_window_on_failure(account, r) -> None:
    rule = alerts.AlertRule(
        id="hi", channel_prefix="price:", field="price", kind="above", threshold=1, window_seconds=60
    )
    sns = boto3.client("sns")
    first = alerts.evaluate((rule,), ev(5, ts=60_000.0), None)
    assert alerts.publish(first, (rule,), r, sns, account.topic_arn) == 1
    again = alerts.evaluate((rule,), ev(6, ts=119_000.0), None)  # same 60 s window
    assert alerts.publish(again, (rule,), r, sns, account.topic_arn) == 0
    later = alerts.evaluate((rule,), ev(7, ts=120_000.0), None)  # next window
    assert alerts.publish(later, (rule,), r, sns, account.topic_arn) == 1
    assert 0 < r.ttl(keys.alert_dedup_key("hi", "price:eth", 2)) <= 60
    bodies = [json.loads(m["Body"]) for m in drain(account.alerts_queue_url)]
    assert [b["value"] for b in bodies] == [5, 7]

    class Broken:
        def publish(self, **kwargs):
            raise RuntimeError("sns down")

    failing = alerts.evaluate((rule,), ev(8, ts=180_000.0), None)
    with pytest.raises(RuntimeError, match="sns down"):
        alerts.publish(failing, (rule,), r, Broken(), account.topic_arn)
    assert not r.exists(keys.alert_dedup_key("hi", "price:eth", 3))


def rotation(secret_arn: str, token: str, step: str) -> dict:
    return {"Step": step, "SecretId": secret_arn, "ClientRequestToken": token}


def test_rotation_steps_stage_a_new_key_and_keep_the_old_one_previous(account, context) -> None:
    sm = boto3.client("secretsmanager")
    with pytest.raises(RotationError, match="does not have rotation enabled"):
        rotate_api_key.handler(rotation(account.api_keys_arn, str(uuid.uuid4()), "createSecret"), context)
    # Enabling rotation without a function makes moto move AWSCURRENT to a copy of the value.
    sm.rotate_secret(
        SecretId=account.api_keys_arn, RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False
    )

    def staged(stage: str) -> str:
        return json.loads(
            sm.get_secret_value(SecretId=account.api_keys_arn, VersionStage=stage)["SecretString"]
        )["api_key"]

    before = staged("AWSCURRENT")
    token = str(uuid.uuid4())
    for step in ("createSecret", "createSecret", "setSecret", "testSecret", "finishSecret", "finishSecret"):
        rotate_api_key.handler(rotation(account.api_keys_arn, token, step), context)
    current = staged("AWSCURRENT")
    assert current not in (API_KEY, PREVIOUS_KEY, before) and len(current) >= 32
    assert staged("AWSPREVIOUS") == before
    stages = sm.describe_secret(SecretId=account.api_keys_arn)["VersionIdsToStages"]
    assert stages[token] == ["AWSCURRENT"]
    assert not any("AWSPENDING" in s for s in stages.values())


def test_rotation_refuses_unknown_steps_and_unstaged_versions(account, context) -> None:
    boto3.client("secretsmanager").rotate_secret(
        SecretId=account.api_keys_arn, RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False
    )
    with pytest.raises(RotationError, match="unknown rotation step"):
        rotate_api_key.handler(rotation(account.api_keys_arn, "t" * 32, "dance"), context)
    with pytest.raises(RotationError, match="not staged AWSPENDING"):
        rotate_api_key.handler(rotation(account.api_keys_arn, str(uuid.uuid4()), "testSecret"), context)
    with pytest.raises(RotationError, match="has no valid Step, ClientRequestToken"):
        rotate_api_key.handler({"SecretId": "x"}, context)


def test_fault_injection_is_off_by_default_and_follows_the_version_env(env, context) -> None:
    event = connect_event("f=")
    assert connect.handler(event, context) == {"statusCode": 200}
    with (
        use_env({**env, "FAULT_ERROR_RATE": "1"}),
        pytest.raises(faults.InjectedFault, match="FAULT_ERROR_RATE=1"),
    ):
        connect.handler(event, context)
    rng = random.Random(7)
    with use_env({"FAULT_ERROR_RATE": "0.25"}):
        raised = 0
        for _ in range(400):
            try:
                faults.before_invocation("messages", rng)
            except faults.InjectedFault:
                raised += 1
    assert 50 < raised < 150
    assert not faults.drop_post(0.0) and faults.drop_post(1.0)
    # FAULT_FUNCTIONS limits the fault to the named functions: connect stays healthy here.
    with use_env({**env, "FAULT_ERROR_RATE": "1", "FAULT_FUNCTIONS": "messages,fanout"}):
        assert connect.handler(event, context) == {"statusCode": 200}
        with pytest.raises(faults.InjectedFault):
            faults.before_invocation("messages")


@pytest.mark.parametrize("fn", [*catalog.RELEASED_FUNCTIONS, catalog.ROTATION_FUNCTION], ids=lambda f: f.key)
def test_every_catalog_handler_imports(fn: catalog.ServiceFunction) -> None:
    module, _, attr = fn.handler.rpartition(".")
    assert callable(getattr(importlib.import_module(module), attr))
