"""Sandbox parts on their own: EventBridge pattern matching, composite alarm rules, the alarm
evaluator against moto's CloudWatch, and the sandbox state file."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from orchestrator.gateway.metrics import Sample
from orchestrator.paths import REPO_ROOT
from orchestrator.sandbox.alarms import (
    AlarmEvaluator,
    MetricStore,
    StoringRecorder,
    composite_reason,
    evaluate_rule,
)
from orchestrator.sandbox.artifacts import artifact_bucket_name, create_artifact_bucket
from orchestrator.sandbox.events import EventBus, Rule, alarm_state_change_event, matches
from orchestrator.sandbox.state import SandboxNotRunning, SandboxState, read_state, write_state

RULE = {
    "source": ["aws.cloudwatch"],
    "detail-type": ["CloudWatch Alarm State Change"],
    "detail": {
        "alarmName": [{"prefix": "staging-release-guard-"}, "staging-release-health"],
        "state": {"value": ["ALARM"]},
    },
}


def event(name: str, state: str = "ALARM") -> dict:
    return alarm_state_change_event(
        alarm_name=name,
        alarm_arn=f"arn:aws:cloudwatch:eu-west-1:1:alarm:{name}",
        state=state,
        previous="OK",
        reason="r",
        when=datetime(2026, 1, 1, tzinfo=UTC),
        region="eu-west-1",
        account="1",
    )


def test_event_pattern_matching() -> None:
    assert matches(RULE, event("staging-release-guard-messages-errors"))
    assert matches(RULE, event("staging-release-health"))
    assert not matches(RULE, event("staging-release-health", "OK"))
    assert not matches(RULE, event("production-release-health"))
    assert matches({"detail": {"n": [{"numeric": [">", 1, "<=", 5]}]}}, {"detail": {"n": 5}})
    assert not matches({"detail": {"n": [{"numeric": [">", 1]}]}}, {"detail": {"n": "2"}})
    assert matches({"source": [{"anything-but": ["x"]}]}, {"source": "y"})
    assert matches({"detail": {"gone": [{"exists": False}]}}, {"detail": {}})
    assert event("a")["detail"]["state"]["timestamp"] == "2026-01-01T00:00:00.000+0000"


def test_event_bus_delivers_to_matching_rules_only() -> None:
    seen: list[tuple[str, dict]] = []
    bus = EventBus(
        [Rule("rollback", RULE, [{"Arn": "arn:fn"}]), Rule("off", {}, [{"Arn": "arn:x"}], enabled=False)],
        lambda arn, e: seen.append((arn, e)),
    )
    bus.put(event("staging-release-health"))
    bus.put(event("staging-release-health", "OK"))
    assert [arn for arn, _ in seen] == ["arn:fn"] and bus.delivered == [("rollback", "arn:fn")]


def test_composite_rule() -> None:
    arns = {"arn:a": "a", "arn:b": "b"}
    rule = 'ALARM("arn:a") OR ALARM("arn:b")'
    assert evaluate_rule(rule, {"a": "OK", "b": "ALARM"}, arns) == "ALARM"
    assert evaluate_rule(rule, {"a": "OK", "b": "OK"}, arns) == "OK"
    assert evaluate_rule("ALARM(a) AND NOT (OK(b))", {"a": "ALARM", "b": "ALARM"}, {}) == "ALARM"
    with pytest.raises(ValueError, match="cannot parse"):
        evaluate_rule("ALARM(a) XOR b", {}, {})


def test_composite_reason_names_the_children_in_alarm_first() -> None:
    arns = {"arn:a": "a", "arn:b": "b", "arn:c": "c"}
    rule = 'ALARM("arn:a") OR ALARM("arn:b")'
    reason = composite_reason(rule, "ALARM", {"a": "ALARM", "b": "ALARM", "c": "ALARM"}, arns)
    assert reason == f"a, b in ALARM: composite rule {rule} is ALARM"  # c is not in the rule
    assert composite_reason(rule, "OK", {"a": "OK", "b": "OK"}, arns) == f"composite rule {rule} is OK"


@mock_aws
def test_evaluator_fires_on_recorded_errors_and_on_set_alarm_state() -> None:
    cw = boto3.client("cloudwatch", region_name="eu-west-1")
    dims = [{"Name": "FunctionName", "Value": "fn"}, {"Name": "Resource", "Value": "fn:live"}]
    cw.put_metric_alarm(
        AlarmName="staging-release-guard-fn-errors",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=dims,
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        DatapointsToAlarm=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    delivered: list[dict] = []
    composite = {
        "AlarmName": "staging-release-health",
        "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:staging-release-health",
        "AlarmRule": 'ALARM("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:staging-release-guard-fn-errors")',
    }
    store = MetricStore()
    evaluator = AlarmEvaluator(
        cw,
        EventBus([Rule("r", RULE, [{"Arn": "arn:fn"}])], lambda a, e: delivered.append(e)),
        store,
        region="eu-west-1",
        account="123456789012",
        time_scale=60,
        composites=[composite],
    )
    recorder = StoringRecorder(cw, store)
    now = datetime.now(UTC)
    evaluator.tick(now)  # learns the states; no data: not breaching
    # Green (version 2) fails once behind live; version 1's successes do not count as errors.
    recorder.record(Sample("fn", "live", "1", 3.0, False))
    recorder.record(Sample("fn", "live", "2", 4.0, True))
    assert store.values(
        "AWS/Lambda",
        "Errors",
        frozenset({("FunctionName", "fn"), ("Resource", "fn:live")}),
        now,
        now + timedelta(seconds=60),
    ) == [0.0, 1.0]  # exact dimension set, counted once
    changes = evaluator.tick(datetime.now(UTC) + timedelta(milliseconds=100))
    assert [(c.alarm, c.state) for c in changes] == [
        ("staging-release-guard-fn-errors", "ALARM"),
        ("staging-release-health", "ALARM"),
    ]
    assert (
        cw.describe_alarms(AlarmNames=["staging-release-guard-fn-errors"])["MetricAlarms"][0]["StateValue"]
        == "ALARM"
    )
    assert [e["detail"]["alarmName"] for e in delivered] == [
        "staging-release-guard-fn-errors",
        "staging-release-health",
    ]
    # The composite's reason names the child that fired first, so a truncated cause still says which.
    assert delivered[1]["detail"]["state"]["reason"].startswith("staging-release-guard-fn-errors in ALARM: ")
    # One compressed period later (1 s of wall time at 60x) the data has aged out: back to OK.
    changes = evaluator.tick(datetime.now(UTC) + timedelta(seconds=2))
    assert {(c.alarm, c.state) for c in changes} == {
        ("staging-release-guard-fn-errors", "OK"),
        ("staging-release-health", "OK"),
    }
    # An operator's SetAlarmState emits the same event, as CloudWatch does.
    cw.set_alarm_state(AlarmName="staging-release-guard-fn-errors", StateValue="ALARM", StateReason="manual")
    delivered.clear()
    evaluator.tick(datetime.now(UTC) + timedelta(seconds=2.1))
    assert delivered[0]["detail"]["state"] == {
        "value": "ALARM",
        "reason": "manual",
        "timestamp": delivered[0]["detail"]["state"]["timestamp"],
    }


def test_state_file(tmp_path) -> None:
    with pytest.raises(SandboxNotRunning, match="sandbox up"):
        read_state(tmp_path)
    state = SandboxState(
        pid=os.getpid(),
        moto_url="http://127.0.0.1:9",
        redis_url="redis://x",
        region="eu-west-1",
        environment="staging",
        account="1",
        time_scale=60,
        started_at=0,
        startup_seconds=1.0,
    )
    write_state(tmp_path, state)
    assert read_state(tmp_path, check_endpoint=False) == state
    with pytest.raises(SandboxNotRunning, match="does not answer"):
        read_state(tmp_path)
    write_state(tmp_path, SandboxState(**{**state.to_dict(), "pid": 2**22 + 7}))
    with pytest.raises(SandboxNotRunning, match="no longer running"):
        read_state(tmp_path, check_endpoint=False)


def test_execution_status_events_are_emitted_once_per_status() -> None:
    import json
    import time

    from orchestrator.sandbox.events import ExecutionEvents

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="eu-west-1")
        machine = sfn.create_state_machine(
            name="m",
            roleArn="arn:aws:iam::123456789012:role/r",
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        )["stateMachineArn"]
        delivered: list[dict] = []
        pattern = {"source": ["aws.states"], "detail": {"status": ["SUCCEEDED", "ABORTED"]}}
        poller = ExecutionEvents(
            sfn,
            [machine],
            EventBus([Rule("ended", pattern, [{"Arn": "arn:fn"}])], lambda a, e: delivered.append(e)),
            "eu-west-1",
            "123456789012",
        )
        assert poller.tick() == []
        arn = sfn.start_execution(stateMachineArn=machine, name="x", input="{}")["executionArn"]
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
            time.sleep(0.01)
        emitted = poller.tick()
        assert [e["detail"]["status"] for e in emitted] == ["SUCCEEDED"]
        assert poller.tick() == []
        assert delivered[0]["detail"]["executionArn"] == arn
        assert delivered[0]["detail-type"] == "Step Functions Execution Status Change"


@mock_aws
def test_composite_in_cloudwatch_follows_its_children_and_set_alarm_state() -> None:
    from orchestrator.sandbox import emulation

    cw = boto3.client("cloudwatch", region_name="eu-west-1")
    cw.put_metric_alarm(
        AlarmName="staging-release-guard-x",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cw.set_alarm_state(AlarmName="staging-release-guard-x", StateValue="OK", StateReason="start")
    emulation.install()
    try:
        cw.put_composite_alarm(
            AlarmName="staging-release-health", AlarmRule='ALARM("staging-release-guard-x")'
        )
    finally:
        emulation.uninstall()
    [composite] = cw.describe_alarms(AlarmNames=["staging-release-health"], AlarmTypes=["CompositeAlarm"])[
        "CompositeAlarms"
    ]
    assert composite["AlarmRule"] == 'ALARM("staging-release-guard-x")'
    delivered: list[dict] = []
    evaluator = AlarmEvaluator(
        cw,
        EventBus([Rule("r", RULE, [{"Arn": "arn:fn"}])], lambda a, e: delivered.append(e)),
        MetricStore(),
        region="eu-west-1",
        account="123456789012",
        time_scale=60,
    )
    evaluator.tick()
    assert (
        cw.describe_alarms(AlarmNames=["staging-release-health"], AlarmTypes=["CompositeAlarm"])[
            "CompositeAlarms"
        ][0]["StateValue"]
        == "OK"
    )
    # `release rollback` sets the composite itself: the change is emitted and kept until a child moves.
    cw.set_alarm_state(
        AlarmName="staging-release-health", StateValue="ALARM", StateReason="operator rollback"
    )
    delivered.clear()
    evaluator.tick()
    evaluator.tick()
    assert [(e["detail"]["alarmName"], e["detail"]["state"]["value"]) for e in delivered] == [
        ("staging-release-health", "ALARM")
    ]
    # A child's change makes the rule count again: the child recovers, so does the composite.
    cw.set_alarm_state(AlarmName="staging-release-guard-x", StateValue="ALARM", StateReason="errors")
    evaluator.tick()
    cw.set_alarm_state(AlarmName="staging-release-guard-x", StateValue="OK", StateReason="recovered")
    evaluator.tick()
    assert (
        cw.describe_alarms(AlarmNames=["staging-release-health"], AlarmTypes=["CompositeAlarm"])[
            "CompositeAlarms"
        ][0]["StateValue"]
        == "OK"
    )


@mock_aws
def test_the_stored_alarms_read_as_describe_alarms_answers() -> None:
    from moto.core import DEFAULT_ACCOUNT_ID

    from orchestrator.sandbox import emulation
    from orchestrator.sandbox.alarms import stored_alarms

    cw = boto3.client("cloudwatch", region_name="eu-west-1")
    cw.put_metric_alarm(
        AlarmName="staging-release-guard-x",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": "fn"}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=2,
        DatapointsToAlarm=1,
        Threshold=1,
        TreatMissingData="notBreaching",
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    emulation.install()
    try:
        cw.put_composite_alarm(
            AlarmName="staging-release-health", AlarmRule='ALARM("staging-release-guard-x")'
        )
    finally:
        emulation.uninstall()
    cw.set_alarm_state(AlarmName="staging-release-guard-x", StateValue="ALARM", StateReason="errors")
    answer = cw.describe_alarms(AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    metric, composite = stored_alarms(DEFAULT_ACCOUNT_ID, "eu-west-1")()
    for stored, described in ((metric, answer["MetricAlarms"]), (composite, answer["CompositeAlarms"])):
        assert len(stored) == len(described) == 1
        assert stored[0] == {key: described[0][key] for key in stored[0]}, (stored, described)


def test_the_sandbox_artifact_bucket_is_the_stages_configured_one(moto_url: str) -> None:
    configured = json.loads((REPO_ROOT / "config" / "staging.json").read_text())["deploy"]
    assert artifact_bucket_name("staging") == configured["artifact_bucket_name"]
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="eu-west-1")
    name = create_artifact_bucket(s3, "sandbox-artifacts-probe", "eu-west-1")
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
