"""Alarm rollback against moto: blue restored at once, execution stopped, lock released, recorded."""

from __future__ import annotations

import json

import boto3

from contracts.state import ApprovalRequested, Release
from tasks import release_record
from tasks.alarm_rollback import alarm_rollback
from tasks.approval import ApprovalInput, request_approval
from tasks.deploy_green import deploy_green
from tasks.set_weights import SetWeightsInput, set_weights
from tests.release_world import FUNCTIONS, GUARD_ALARMS
from tests.unit.tasks.helpers import hold_lock, task_input, validated_state


def alarm_event(name: str, value: str = "ALARM") -> dict:
    return {
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "time": "2026-01-01T00:00:00Z",
        "detail": {
            "alarmName": name,
            "state": {
                "value": value,
                "reason": "errors above 5%",
                "timestamp": "2026-01-01T00:00:00.000+0000",
            },
        },
    }


def running_execution() -> str:
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    arn = sfn.create_state_machine(
        name="staging-release",
        definition=json.dumps(
            {"StartAt": "Bake", "States": {"Bake": {"Type": "Wait", "Seconds": 600, "End": True}}}
        ),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    return sfn.start_execution(stateMachineArn=arn, name="rel-1", input="{}")["executionArn"]


def test_alarm_during_bake_restores_blue_and_stops_the_release(world, settings):
    execution_arn = running_execution()
    state = validated_state(world, settings)
    state = state.model_copy(
        update={"release": state.release.model_copy(update={"execution_arn": execution_arn})}
    )
    hold_lock(world, execution_arn=execution_arn)
    release_record.start(settings, state.release)
    state = state.with_sections(deploy=deploy_green(settings, state.release))
    state = state.with_sections(shift=set_weights(settings, task_input(SetWeightsInput, state)))
    assert world.aliases("live")[FUNCTIONS[0]] == ("1", {"2": 0.1})

    result = alarm_rollback(settings, alarm_event(GUARD_ALARMS[0]))

    assert result["action"] == "rolled_back" and result["execution_stopped"] is True
    assert result["detect_to_rollback_ms"] > 0
    assert world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS}
    assert world.lock() is None
    record = world.record("rel-1")
    assert record["status"] == "ROLLED_BACK" and GUARD_ALARMS[0] in record["cause"]
    # The notice names the release as the record does, although the alarm came from outside the execution.
    notice = [m for m in world.notifications() if m["transition"] == "ROLLED_BACK"][-1]
    assert (notice["release_id"], notice["version"], notice["requested_by"]) == ("rel-1", "1.1.0", "alice")
    assert notice["execution_arn"] == execution_arn and notice["dry_run"] is False
    described = boto3.client("stepfunctions", region_name="eu-west-1").describe_execution(
        executionArn=execution_arn
    )
    assert described["status"] == "ABORTED"


def test_alarm_without_a_release_or_back_to_ok_does_nothing(world, settings):
    assert alarm_rollback(settings, alarm_event(GUARD_ALARMS[0]))["action"] == "none"
    hold_lock(world)
    assert alarm_rollback(settings, alarm_event(GUARD_ALARMS[0], value="OK"))["action"] == "none"
    assert world.lock() is not None


def test_approval_stores_the_token_and_notifies_the_commands(world, settings):
    state = validated_state(world, settings, approval="required")
    assert isinstance(state.release, Release) and state.release.approval == "required"
    release_record.start(settings, state.release)
    result = ApprovalRequested.model_validate(
        request_approval(settings, task_input(ApprovalInput, state, task_token="token-123"))
    )
    assert result.approval_requested is True and result.expires_at > state.release.started_at
    assert world.record("rel-1")["approval_token"] == "token-123"
    message = [m for m in world.notifications() if m["transition"] == "ApprovalRequested"][0]
    assert "orchestrator release approve rel-1 --env staging" in message["summary"]
    assert "orchestrator release reject rel-1 --env staging" in message["summary"]
