"""Alarm rollback against moto: blue restored at once, execution stopped, lock released, recorded."""

from __future__ import annotations

import json

import boto3
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

from contracts.state import Release
from tasks import release_record
from tasks.alarm_rollback import alarm_rollback
from tasks.approval import ApprovalInput, request_approval
from tasks.deploy_green import deploy_green
from tasks.set_weights import SetWeightsInput, set_weights
from tests.support.release_world import FUNCTIONS, GUARD_ALARMS
from tests.support.task_state import hold_lock, task_input, validated_state


def alarm_event(name: str, value: str = "ALARM") -> EventBridgeModel:
    """The alarm's state change as EventBridge delivers it, parsed as the handler parses it."""
    return EventBridgeModel.model_validate(
        {
            "version": "0",
            "id": "7bf73129-1428-4cd3-a780-95db273d1602",
            "source": "aws.cloudwatch",
            "account": "123456789012",
            "region": "eu-west-1",
            "resources": [f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}"],
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
    )


def execution_ended_event(execution_arn: str, status: str) -> EventBridgeModel:
    return EventBridgeModel.model_validate(
        {
            "version": "0",
            "id": "0d7b0f47-5d4e-4d2c-9d43-0f1b1c1d1e1f",
            "source": "aws.states",
            "account": "123456789012",
            "region": "eu-west-1",
            "resources": [execution_arn],
            "detail-type": "Step Functions Execution Status Change",
            "time": "2026-01-01T00:00:00Z",
            "detail": {"executionArn": execution_arn, "status": status},
        }
    )


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


def test_an_execution_ended_holding_the_lock_rolls_back_only_its_own_release(world, settings):
    from tests.support.task_state import EXECUTION_ARN

    state = validated_state(world, settings)
    hold_lock(world)
    release_record.start(settings, state.release)
    state = state.with_sections(deploy=deploy_green(settings, state.release))
    set_weights(settings, task_input(SetWeightsInput, state))
    other = alarm_rollback(settings, execution_ended_event(EXECUTION_ARN + "-other", "ABORTED"))
    assert other == {"action": "none", "reason": "the ended execution does not hold the lock"}
    assert alarm_rollback(settings, execution_ended_event(EXECUTION_ARN, "SUCCEEDED"))["action"] == "none"
    result = alarm_rollback(settings, execution_ended_event(EXECUTION_ARN, "TIMED_OUT"))
    assert result["action"] == "rolled_back" and result["execution_stopped"] is False
    assert world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS} and world.lock() is None
    assert "execution ended TIMED_OUT" in world.record("rel-1")["cause"]


def test_approval_stores_the_token_and_notifies_the_commands(world, settings):
    state = validated_state(world, settings, approval="required")
    assert isinstance(state.release, Release) and state.release.approval == "required"
    release_record.start(settings, state.release)
    result = request_approval(settings, task_input(ApprovalInput, state, task_token="token-123"))
    assert result.approval_requested is True and result.expires_at > state.release.started_at
    assert world.record("rel-1")["approval_token"] == "token-123"
    message = [m for m in world.notifications() if m["transition"] == "ApprovalRequested"][0]
    assert "orchestrator release approve rel-1 --env staging" in message["summary"]
    assert "orchestrator release reject rel-1 --env staging" in message["summary"]
