"""Monitoring in isolation: dashboards, operational alarms to the operations topic, the release guard."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Duration, Environment, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Template

from contracts.names import CANARY_GUARD_METRICS, release_guard_canary_alarm_name
from infra.config import load_config
from infra.monitoring_construct import (
    API_COUNT_METRICS,
    BUSINESS_METRICS,
    MonitoringConstruct,
    MonitoringProps,
    QueuePair,
)
from service import catalog

ACCOUNT = "111111111111"


@pytest.fixture(scope="module")
def built() -> tuple[Template, dict[str, Any], MonitoringConstruct]:
    config = load_config("staging")
    app = App()
    stack = Stack(app, "MonitoringTest", env=Environment(account=ACCOUNT, region="eu-west-1"))
    names = {key: f"staging-realtime-{key}" for key in catalog.released_keys()}
    functions = {
        key: lambda_.Function.from_function_name(stack, f"Fn{key}", name) for key, name in names.items()
    }
    queues = {
        name: QueuePair(sqs.Queue(stack, f"{name}Queue"), sqs.Queue(stack, f"{name}Dlq"))
        for name in ("events", "preview-events")
    }
    ops = sns.Topic(stack, "Operations")
    monitoring = MonitoringConstruct(
        stack,
        "Monitoring",
        props=MonitoringProps(
            environment="staging",
            functions=functions,
            function_names=names,
            queues=queues,
            fanout_dead_letter_queue=queues["events"].dead_letter_queue,
            topics={"alerts": sns.Topic(stack, "Alerts"), "operations": ops},
            operations_topic=ops,
            cache_node_ids=["staging-realtime-cache-001", "staging-realtime-cache-002"],
            api_id="abc123",
            api_stages=["live", "preview"],
            live_stage="live",
            alarms=config.alarms,
            release_guard_error_threshold=3,
            business_metric_services={key: f"realtime-analytics-{key}" for key in catalog.released_keys()},
        ),
    )
    machine = sfn.StateMachine(
        stack,
        "Machine",
        definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "Done")),
        timeout=Duration.minutes(5),
    )
    monitoring.monitor_state_machine(machine, name="release")
    template = Template.from_stack(stack)
    return template, template.to_json(), monitoring


def _alarms(tpl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["AlarmName"]: r["Properties"]
        for r in tpl["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_release_guard_is_one_plain_errors_alarm_per_live_alias(built) -> None:
    _, tpl, monitoring = built
    alarms = _alarms(tpl)
    for key in catalog.released_keys():
        alarm = alarms[f"staging-release-guard-{key}-errors"]
        name = f"staging-realtime-{key}"
        assert alarm["Namespace"] == "AWS/Lambda"
        assert alarm["MetricName"] == "Errors"
        assert alarm["Statistic"] == "Sum"
        assert alarm["Period"] == 60
        assert sorted(alarm["Dimensions"], key=lambda d: d["Name"]) == [
            {"Name": "FunctionName", "Value": name},
            {"Name": "Resource", "Value": f"{name}:live"},
        ]
        assert alarm["Threshold"] == 3
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        # Plain metric alarms (no metric math) so the sandbox can evaluate them.
        assert "Metrics" not in alarm
    # One per released function, the fan-out DLQ's, and the canary stage's two API Gateway errors.
    assert len(monitoring.release_guard_alarms) == len(catalog.released_keys()) + 1 + len(
        CANARY_GUARD_METRICS
    )


def test_release_guard_watches_the_canary_stage(built) -> None:
    _, tpl, _ = built
    alarms = _alarms(tpl)
    for metric in CANARY_GUARD_METRICS:
        alarm = alarms[release_guard_canary_alarm_name("staging", metric)]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
            "AWS/ApiGateway",
            metric,
            "Sum",
        )
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert dimensions["Stage"] == "canary" and set(dimensions) == {"ApiId", "Stage"}
        assert alarm["Threshold"] == 3 and alarm["Period"] == 60
        assert alarm["TreatMissingData"] == "notBreaching"
        assert "Metrics" not in alarm  # a plain metric alarm, which the sandbox evaluates


def test_release_guard_watches_the_live_fanout_dlq(built) -> None:
    _, tpl, _ = built
    alarm = _alarms(tpl)["staging-release-guard-fanout-dlq"]
    dlq_id = next(lid for lid in tpl["Resources"] if lid.startswith("eventsDlq"))
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}]
    assert alarm["Threshold"] == 0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert "Metrics" not in alarm


def test_release_health_is_an_or_of_every_guard_and_notifies_operations(built) -> None:
    _, tpl, monitoring = built
    (composite,) = [
        r["Properties"] for r in tpl["Resources"].values() if r["Type"] == "AWS::CloudWatch::CompositeAlarm"
    ]
    assert composite["AlarmName"] == "staging-release-health"
    rule = composite["AlarmRule"]
    parts = rule["Fn::Join"][1] if isinstance(rule, dict) else [rule]
    text = "".join(p if isinstance(p, str) else f"<{p['Fn::GetAtt'][0]}>" for p in parts)
    guard_ids = [
        lid
        for lid, r in tpl["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"]["AlarmName"].startswith("staging-release-guard-")
    ]
    assert len(guard_ids) == len(catalog.released_keys()) + 1 + len(CANARY_GUARD_METRICS)
    for lid in guard_ids:
        assert f'ALARM("<{lid}>")' in text
    assert text.count(" OR ") == len(guard_ids) - 1
    ops_id = next(lid for lid in tpl["Resources"] if lid.startswith("Operations"))
    assert composite["AlarmActions"] == [{"Ref": ops_id}]
    assert monitoring.release_health_alarm is not None


def test_operational_alarms_notify_the_operations_topic(built) -> None:
    _, tpl, _ = built
    ops_id = next(lid for lid in tpl["Resources"] if lid.startswith("Operations"))
    operational = {n: a for n, a in _alarms(tpl).items() if not n.startswith("staging-release-guard-")}
    assert len(operational) > 10
    for name, alarm in operational.items():
        assert alarm["AlarmActions"] == [{"Ref": ops_id}], name
        assert name.startswith("staging-realtime-"), name


def test_websocket_api_alarms_on_live_stage_errors_and_latency(built) -> None:
    _, tpl, _ = built
    watched = set()
    for alarm in _alarms(tpl).values():
        for metric in alarm.get("Metrics", []):
            stat = metric.get("MetricStat", {})
            if stat.get("Metric", {}).get("Namespace") == "AWS/ApiGateway":
                dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
                watched.add((stat["Metric"]["MetricName"], dims["Stage"], dims["ApiId"]))
        if alarm.get("Namespace") == "AWS/ApiGateway":
            dims = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
            watched.add((alarm["MetricName"], dims["Stage"], dims["ApiId"]))
    assert {
        ("IntegrationError", "live", "abc123"),
        ("ExecutionError", "live", "abc123"),
        ("IntegrationLatency", "live", "abc123"),
    } <= watched
    assert not {w for w in watched if w[1] == "preview"}


def test_dashboards_show_websocket_business_cache_and_state_machine_metrics(built) -> None:
    template, tpl, _ = built
    dashboards = [r for r in tpl["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    assert {d["Properties"]["DashboardName"] for d in dashboards} >= {
        "staging-realtime",
        "staging-realtime-Summary",
    }
    body = "".join(
        part if isinstance(part, str) else "<token>"
        for d in dashboards
        for part in (
            d["Properties"]["DashboardBody"].get("Fn::Join", ["", [d["Properties"]["DashboardBody"]]])[1]
        )
    )
    for metric in API_COUNT_METRICS + ("IntegrationLatency",):
        assert f'"{metric}"' in body
    for metric, _, _, emitters in BUSINESS_METRICS:
        for key in emitters:
            assert f'"RealtimeAnalytics","{metric}","service","realtime-analytics-{key}"' in body
    assert "staging-realtime-cache-002" in body
    assert "AWS/States" in body
    watched = {
        (
            metric["MetricStat"]["Metric"]["Namespace"],
            metric["MetricStat"]["Metric"]["MetricName"],
            alarm["Threshold"],
        )
        for alarm in _alarms(tpl).values()
        for metric in alarm.get("Metrics", [])
        if "MetricStat" in metric
    }
    assert ("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", 80) in watched
    assert ("AWS/States", "ExecutionsFailed", 0) in watched
