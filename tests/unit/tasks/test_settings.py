"""Task settings: one model per family, every missing or malformed variable named at once."""

from __future__ import annotations

import pytest

from tasks.settings import (
    BackupSettings,
    CacheTaskSettings,
    CostSettings,
    DrillSettings,
    EventPathSettings,
    OperationsSettingsError,
    OpsSettings,
    ReleaseTaskSettings,
    SettingsError,
)

RELEASE_ENV = {
    "ENVIRONMENT": "staging",
    "SERVICE_FUNCTION_NAMES": '["staging-connect", "staging-messages"]',
    "RELEASE_TABLE_NAME": "staging-release",
}


def test_release_settings_name_every_missing_variable_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        ReleaseTaskSettings.from_env({"SERVICE_FUNCTION_NAMES": "", "AWS_REGION": "eu-west-1"})
    assert str(caught.value) == (
        "release task settings missing: ENVIRONMENT, SERVICE_FUNCTION_NAMES, RELEASE_TABLE_NAME"
    )


def test_release_settings_name_missing_and_malformed_variables_together() -> None:
    with pytest.raises(SettingsError) as caught:
        ReleaseTaskSettings.from_env(
            {"ENVIRONMENT": "staging", "SERVICE_FUNCTION_NAMES": "[oops", "RELEASE_ALARM_NAMES": '{"a": 1}'}
        )
    message = str(caught.value)
    assert message.startswith("release task settings missing: RELEASE_TABLE_NAME; ")
    assert "SERVICE_FUNCTION_NAMES: not a JSON list" in message
    assert "RELEASE_ALARM_NAMES: must be a JSON list of alarm names" in message


def test_release_settings_read_lists_region_and_defaults() -> None:
    settings = ReleaseTaskSettings.from_env(
        {
            **RELEASE_ENV,
            "AWS_DEFAULT_REGION": "eu-west-1",
            "RELEASE_TOPIC_ARN": "",
            "RELEASE_ALARM_NAMES": '["g1", "g2", "g1"]',
            "RELEASE_DEFAULTS": '{"approval": "required", "min_green_invocations": 5}',
        }
    )
    assert settings.functions == ("staging-connect", "staging-messages")
    assert settings.region == "eu-west-1" and settings.topic_arn is None
    assert settings.alarm_names == ("g1", "g2")
    assert (settings.defaults.approval, settings.defaults.min_green_invocations) == ("required", 5)
    comma = ReleaseTaskSettings.from_env({**RELEASE_ENV, "SERVICE_FUNCTION_NAMES": "a, b,"})
    assert comma.functions == ("a", "b") and comma.region == "us-east-1"


def test_cache_settings_defaults_and_bounds() -> None:
    assert CacheTaskSettings.from_env({}) == CacheTaskSettings(time_budget_seconds=60, batch_keys=1000)
    with pytest.raises(SettingsError, match="WARM_TIME_BUDGET_SECONDS must be between 1 and 900, got 901"):
        CacheTaskSettings.from_env({"WARM_TIME_BUDGET_SECONDS": "901"})


def test_operations_settings_share_the_reporting_fields_and_their_error() -> None:
    with pytest.raises(OperationsSettingsError) as caught:
        EventPathSettings.from_env({"ENVIRONMENT": "staging", "PREVIEW_EVENTS_QUEUE_URL": "q"})
    assert str(caught.value) == (
        "operations task settings missing: PREVIEW_EVENTS_DLQ_URL, PREVIEW_MAPPING_UUID, FANOUT_FUNCTION_NAME"
    )
    assert isinstance(caught.value, SettingsError) and isinstance(caught.value, ValueError)
    drill = DrillSettings.from_env(
        {
            "ENVIRONMENT": "staging",
            "OPERATIONS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:ops",
            "REPLICATION_GROUP_ID": "staging-cache",
            "BACKUP_BUCKET": "backups",
            "CACHE_SUBNET_GROUP": "subnets",
            "CACHE_SECURITY_GROUP_IDS": "sg-1, sg-2,",
        }
    )
    assert isinstance(drill, OpsSettings) and drill.topic_arn and drill.namespace == "RealtimeAnalytics"
    assert drill.security_group_ids == ("sg-1", "sg-2") and drill.port == 6379
    backup = drill.backup_settings()
    assert isinstance(backup, BackupSettings) and backup.retention_days == 1
    assert backup.name_pattern.match("staging-cache-2026-01-31")


def test_cost_settings_refuse_a_non_positive_budget() -> None:
    with pytest.raises(ValueError, match="DAILY_BUDGET_USD must be greater than 0, got -1"):
        CostSettings.from_env({"ENVIRONMENT": "staging", "DAILY_BUDGET_USD": "-1"})
    assert CostSettings(environment="staging", daily_budget_usd=25).anomaly_threshold_percent == 30.0
