"""Monitoring as wired into each stage: the release guard names, dimensions and thresholds the
orchestrator and the sandbox rely on, and business-metric dimensions that match the functions."""

from __future__ import annotations

import json

from contracts import names
from infra.config import EnvironmentConfig
from service import catalog


def _alarms(template) -> dict[str, dict]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
    }


def test_release_guard_alarms_watch_each_live_alias_with_the_configured_threshold(
    env_template, configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    alarms = _alarms(template)
    for key in catalog.released_keys():
        name = names.function_name(env, key)
        alarm = alarms[f"{env}-release-guard-{key}-errors"]
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            "FunctionName": name,
            "Resource": f"{name}:live",
        }
        assert alarm["Threshold"] == configs[env].alarms.release_guard_errors
        assert (alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == ("Errors", "Sum", 60)
    dlq = alarms[f"{env}-release-guard-fanout-dlq"]
    (dlq_dimension,) = dlq["Dimensions"]
    dlq_id = dlq_dimension["Value"]["Fn::GetAtt"][0]
    queue = template.find_resources("AWS::SQS::Queue")[dlq_id]["Properties"]
    assert queue["QueueName"] == names.dlq_name(env, "events")


def test_release_health_composite_covers_every_guard(env_template) -> None:
    env, template = env_template
    composites = {
        c["Properties"]["AlarmName"]: c["Properties"]
        for c in template.find_resources("AWS::CloudWatch::CompositeAlarm").values()
    }
    rule = json.dumps(composites[f"{env}-release-health"]["AlarmRule"])
    guard_ids = [
        lid
        for lid, a in template.find_resources("AWS::CloudWatch::Alarm").items()
        if a["Properties"]["AlarmName"].startswith(f"{env}-release-guard-")
    ]
    assert len(guard_ids) == len(catalog.released_keys()) + 1 + len(names.CANARY_GUARD_METRICS)
    for lid in guard_ids:
        assert lid in rule


def test_every_alarm_notifies_the_operations_topic(env_template) -> None:
    env, template = env_template
    (topic_id,) = [
        lid
        for lid, t in template.find_resources("AWS::SNS::Topic").items()
        if t["Properties"].get("TopicName") == names.topic_name(env, "operations")
    ]
    mine = {
        name: alarm
        for name, alarm in _alarms(template).items()
        if name.startswith((f"{env}-release-guard-", f"{env}-realtime-"))
    }
    assert len(mine) > 20
    for name, alarm in mine.items():
        assert {"Ref": topic_id} in alarm["AlarmActions"], name


def test_business_metric_dimensions_match_each_functions_service_name(env_template) -> None:
    env, template = env_template
    services = {
        f["Properties"]["FunctionName"].removeprefix(f"{env}-realtime-"): f["Properties"]["Environment"][
            "Variables"
        ]["POWERTOOLS_SERVICE_NAME"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if str(f["Properties"].get("FunctionName", "")).removeprefix(f"{env}-realtime-")
        in catalog.released_keys()
    }
    bodies = json.dumps(
        [
            d["Properties"]["DashboardBody"]
            for d in template.find_resources("AWS::CloudWatch::Dashboard").values()
        ]
    )
    for key in ("connect", "disconnect", "messages", "fanout"):
        assert f'\\"service\\",\\"{services[key]}\\"' in bodies, key


def test_cache_nodes_are_monitored_by_their_ids(env_template, configs: dict[str, EnvironmentConfig]) -> None:
    env, template = env_template
    group = names.cache_replication_group_id(env)
    expected = {f"{group}-{i:03d}" for i in range(1, configs[env].cache.replicas + 2)}
    watched = {
        dimension["Value"]
        for alarm in _alarms(template).values()
        for metric in alarm.get("Metrics", [])
        for dimension in metric.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])
        if dimension["Name"] == "CacheClusterId"
    }
    assert watched == expected
