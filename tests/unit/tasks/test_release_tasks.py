"""Each release task's logic against moto: what it changes, what it records, how it fails."""

from __future__ import annotations

import json

import boto3
import pytest

from contracts.state import Deploy, Failure, Recorded, ReleaseState, Shift, ShiftCursor, WarmCursor
from tasks import release_record
from tasks.check_alarms import CheckAlarmsInput, check_alarms
from tasks.deploy_green import deploy_green
from tasks.errors import (
    AlarmTriggered,
    DeploymentFailed,
    GreenUnhealthy,
    InsufficientGreenTraffic,
    InvalidRelease,
    LockLost,
)
from tasks.finalize import FinalizeInput, finalize
from tasks.rollback import RollbackInput, describe_failure, rollback
from tasks.set_weights import SetWeightsInput, set_weights
from tasks.validate_request import ValidateInput, validate
from tests.support.release_world import (
    ALARM_NAMES,
    FUNCTIONS,
    GUARD_ALARMS,
    HEALTH_ALARM,
    record_green_traffic,
)
from tests.support.task_state import (
    EXECUTION_ARN,
    LambdaContext,
    hold_lock,
    request,
    task_input,
    validated_state,
)


def started(world, settings, **overrides) -> ReleaseState:
    state = validated_state(world, settings, **overrides)
    hold_lock(world)
    release_record.start(settings, state.release)
    return state


def deployed(settings, state: ReleaseState) -> ReleaseState:
    return state.with_sections(deploy=deploy_green(settings, state.release))


def shifted(settings, state: ReleaseState) -> ReleaseState:
    return state.with_sections(shift=set_weights(settings, task_input(SetWeightsInput, state)))


def test_validate_normalizes_and_sets_loop_cursors(world, settings):
    state = validated_state(world, settings)
    release = state.release
    assert release.release_id == "rel-1"
    assert release.environment == "staging"
    assert release.execution_arn == EXECUTION_ARN
    assert release.lock_expires_at > release.started_at
    assert release.console_url.endswith(EXECUTION_ARN)
    assert release.step_count == len(release.strategy.steps) == 2
    assert state.warm == WarmCursor(cursor="0", done=False)
    assert state.shift == ShiftCursor(next_index=0)
    assert state.deploy is None and state.failure is None


def test_validate_writes_the_state_as_the_contract_reads_it(world, settings):
    state = validated_state(world, settings)
    # What the task returned is what the model reads back, field for field.
    assert ReleaseState.model_validate(state.json_dict()) == state
    assert set(state.json_dict()) == {"release", "warm", "shift"}
    assert "min_green_invocations" not in state.json_dict()["release"]["strategy"]["steps"][0]


def test_validate_names_the_field_and_uses_execution_name_as_id(world, settings):
    raw = request(world)
    raw.pop("release_id")
    state = validate(
        ValidateInput(
            request=raw,
            execution_arn=EXECUTION_ARN,
            execution_name="exec-7",
            started_at="2026-01-01T00:00:00Z",
        ),
        settings,
        release_record_defaults(),
    )
    assert ReleaseState.model_validate(state).release.release_id == "exec-7"
    raw["strategy"] = {"steps": [{"percent": 50, "bake_seconds": 1}]}
    with pytest.raises(InvalidRelease, match=r"strategy\.steps: the last step must be 100 percent"):
        validate(
            ValidateInput(
                request=raw,
                execution_arn=EXECUTION_ARN,
                execution_name="x",
                started_at="2026-01-01T00:00:00Z",
            ),
            settings,
            release_record_defaults(),
        )


def release_record_defaults():
    from contracts.release import ReleaseDefaults

    return ReleaseDefaults()


def test_deploy_green_publishes_points_green_and_is_idempotent(world, settings):
    state = started(world, settings, configuration={"CACHE_SCHEMA_VERSION": "2"})
    result = Deploy.model_validate(deploy_green(settings, state.release))
    assert result == Deploy(
        blue={fn: "1" for fn in FUNCTIONS},
        green={fn: "2" for fn in FUNCTIONS},
        blue_schema="1",
        green_schema="2",
    )
    assert all(version == "1" and not weights for version, weights in world.aliases("live").values())
    assert all(version == "2" for version, _ in world.aliases("green").values())
    lam = boto3.client("lambda", region_name="eu-west-1")
    config = lam.get_function_configuration(FunctionName=FUNCTIONS[0], Qualifier="2")
    assert config["Environment"]["Variables"]["SERVICE_VERSION"] == "1.1.0"
    assert config["Environment"]["Variables"]["CACHE_SCHEMA_VERSION"] == "2"
    # A retry after a timeout publishes nothing new.
    assert deploy_green(settings, state.release).green == result.green
    assert world.record("rel-1")["green_versions"] == result.green


def with_artifact(state: ReleaseState, **fields) -> ReleaseState:
    release = state.json_dict()["release"]
    return state.with_sections(release={**release, "artifact": {**release["artifact"], **fields}})


def test_deploy_green_refuses_a_checksum_mismatch(world, settings):
    state = with_artifact(started(world, settings), sha256="0" * 64)
    with pytest.raises(DeploymentFailed, match="does not match the artifact"):
        deploy_green(settings, state.release)
    assert all(version == "1" for version, _ in world.aliases("live").values())


def test_deploy_green_reports_a_missing_artifact(world, settings):
    state = with_artifact(started(world, settings), key="service/missing.zip")
    with pytest.raises(DeploymentFailed, match="missing.zip"):
        deploy_green(settings, state.release)


def test_set_weights_shifts_in_lockstep_then_all_the_way(world, settings):
    state = shifted(settings, deployed(settings, started(world, settings)))
    assert isinstance(state.shift, Shift)
    assert (state.shift.index, state.shift.percent, state.shift.is_last, state.shift.next_index) == (
        0,
        10,
        False,
        1,
    )
    assert world.aliases("live") == {fn: ("1", {"2": 0.1}) for fn in FUNCTIONS}
    state = shifted(settings, state)
    assert isinstance(state.shift, Shift) and state.shift.is_last is True and state.shift.percent == 100
    assert world.aliases("live") == {fn: ("2", {}) for fn in FUNCTIONS}


def test_set_weights_refuses_without_the_lock(world, settings):
    state = deployed(settings, started(world, settings))
    hold_lock(world, release_id="someone-else")
    with pytest.raises(LockLost, match="someone-else"):
        set_weights(settings, task_input(SetWeightsInput, state))
    assert all(not weights for _, weights in world.aliases("live").values())


def test_dry_run_shift_leaves_live_alone(world, settings):
    state = deployed(settings, started(world, settings, dry_run=True))
    shift = Shift.model_validate(set_weights(settings, task_input(SetWeightsInput, state)))
    assert shift.dry_run is True and shift.bake_seconds == 0
    assert world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS}
    state = state.with_sections(shift={**shift.model_dump(), "next_index": 1})
    assert finalize(settings, task_input(FinalizeInput, state)).status == "DRY_RUN_SUCCEEDED"
    assert world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS}
    assert world.aliases("green") == {fn: ("1", {}) for fn in FUNCTIONS}
    assert world.record("rel-1")["status"] == "DRY_RUN_SUCCEEDED"


def alarms_of(settings, state: ReleaseState):
    return check_alarms(settings, task_input(CheckAlarmsInput, state))


def test_check_alarms_passes_when_quiet_and_fails_on_alarm(world, settings):
    state = shifted(settings, deployed(settings, started(world, settings)))
    checked = state.with_sections(alarms=alarms_of(settings, state)).alarms
    assert checked is not None
    assert (checked.alarms_checked, checked.required, checked.green_invocations) == (len(ALARM_NAMES), 0, 0)
    world.set_alarm(GUARD_ALARMS[1], "ALARM")
    with pytest.raises(AlarmTriggered, match=GUARD_ALARMS[1]):
        alarms_of(settings, state)


def test_check_alarms_requires_green_invocations(world, settings):
    state = shifted(settings, deployed(settings, started(world, settings, min_green_invocations=50)))
    with pytest.raises(InsufficientGreenTraffic, match="served 0 invocations at 10%"):
        alarms_of(settings, state)
    record_green_traffic(400)  # 5 functions x 400 at 10%: about 200 on green
    assert alarms_of(settings, state).green_invocations >= 50


def test_a_malformed_section_is_refused_naming_the_field(world, settings):
    from tasks.check_alarms import handler
    from tasks.errors import InvalidState

    state = shifted(settings, deployed(settings, started(world, settings))).json_dict()
    state["shift"] = {**state["shift"], "percent": "most"}
    del state["shift"]["shifted_at"]
    with pytest.raises(InvalidState) as caught:
        handler(state, LambdaContext())
    message = str(caught.value)
    assert message.startswith("CheckAlarmsInput is invalid: ")
    assert "shift.percent: Input should be a valid integer" in message
    assert "shift.shifted_at: Field required" in message


def _baked(world, settings):
    return shifted(settings, deployed(settings, started(world, settings)))


def _delete_alarms(*names: str) -> None:
    boto3.client("cloudwatch", region_name="eu-west-1").delete_alarms(AlarmNames=list(names))


def test_check_alarms_refuses_without_guard_alarms(world, settings):
    _delete_alarms(HEALTH_ALARM, *GUARD_ALARMS)
    state = _baked(world, settings)
    with pytest.raises(GreenUnhealthy, match="green cannot be judged") as caught:
        alarms_of(settings, state)
    assert all(name in str(caught.value) for name in ALARM_NAMES)


def test_check_alarms_fails_when_one_guard_alarm_is_missing_and_names_it(world, settings):
    missing = GUARD_ALARMS[2]
    _delete_alarms(missing)
    state = _baked(world, settings)
    with pytest.raises(GreenUnhealthy) as caught:
        alarms_of(settings, state)
    message = str(caught.value)
    assert f"release-guard alarm {missing}:" in message
    assert [name for name in ALARM_NAMES if name in message] == [missing]


def test_check_alarms_fails_when_the_composite_is_missing_and_names_it(world, settings):
    # What a DescribeAlarms permission scoped to alarm ARNs does: the composite never comes back.
    _delete_alarms(HEALTH_ALARM)
    state = _baked(world, settings)
    with pytest.raises(GreenUnhealthy) as caught:
        alarms_of(settings, state)
    message = str(caught.value)
    assert f"composite alarm {HEALTH_ALARM}" in message
    assert [name for name in ALARM_NAMES if name in message] == [HEALTH_ALARM]


def test_check_alarms_expects_the_composite_even_when_the_list_omits_it(world, settings):
    _delete_alarms(HEALTH_ALARM)
    state = _baked(world, settings)
    with pytest.raises(GreenUnhealthy, match=f"composite alarm {HEALTH_ALARM}"):
        alarms_of(settings.model_copy(update={"alarm_names": GUARD_ALARMS}), state)


def test_check_alarms_refuses_without_an_expected_list(world, settings):
    state = _baked(world, settings)
    with pytest.raises(GreenUnhealthy, match="RELEASE_ALARM_NAMES names no release-guard alarm"):
        alarms_of(settings.model_copy(update={"alarm_names": ()}), state)


def test_check_alarms_asks_for_at_most_100_names_per_call(world, settings, monkeypatch):
    from tasks import check_alarms as module

    asked: list[int] = []
    real = module.client

    def counting_client(service):
        made = real(service)
        if service == "cloudwatch":
            made.meta.events.register(
                "provide-client-params.cloudwatch.DescribeAlarms",
                lambda params, **_: asked.append(len(params["AlarmNames"])),
            )
        return made

    monkeypatch.setattr(module, "client", counting_client)
    many = tuple(f"staging-release-guard-extra{i}-errors" for i in range(150))
    state = _baked(world, settings)
    with pytest.raises(GreenUnhealthy, match="extra149"):
        alarms_of(settings.model_copy(update={"alarm_names": (*many, *ALARM_NAMES)}), state)
    assert asked and max(asked) <= 100 and sum(asked) == len(many) + len(ALARM_NAMES)


def test_finalize_puts_live_on_green_and_records(world, settings):
    state = shifted(settings, deployed(settings, started(world, settings)))
    state = state.with_sections(finalize=finalize(settings, task_input(FinalizeInput, state)))
    assert state.finalize is not None and state.deploy is not None
    assert (state.finalize.status, state.finalize.live) == ("SUCCEEDED", state.deploy.green)
    assert world.aliases("live") == {fn: ("2", {}) for fn in FUNCTIONS}
    record = world.record("rel-1")
    assert record["status"] == "SUCCEEDED" and "ended_at" in record
    transitions = [event["transition"] for event in release_record.events(settings, "rel-1")]
    assert transitions[0] == "ReleaseStarted" and transitions[-1] == "SUCCEEDED"
    messages = world.notifications()
    assert [m["transition"] for m in messages] == [
        "ReleaseStarted",
        "GreenDeployed",
        "TrafficShifted",
        "SUCCEEDED",
    ]
    assert all(m["console_url"].endswith(EXECUTION_ARN) for m in messages)


def test_rollback_restores_blue_mid_shift(world, settings):
    state = shifted(settings, deployed(settings, started(world, settings)))
    state = state.with_sections(
        failure={
            "Error": "AlarmTriggered",
            "Cause": json.dumps({"errorMessage": "in ALARM: x", "errorType": "AlarmTriggered"}),
        }
    )
    state = state.with_sections(rollback=rollback(settings, task_input(RollbackInput, state)))
    assert state.rollback is not None
    assert state.rollback.cause == "AlarmTriggered: in ALARM: x"
    assert state.rollback.restored == {fn: "1" for fn in FUNCTIONS}
    assert world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS}
    assert world.aliases("green") == {fn: ("1", {}) for fn in FUNCTIONS}
    record = world.record("rel-1")
    assert record["status"] == "ROLLED_BACK" and record["cause"] == "AlarmTriggered: in ALARM: x"


def test_a_rolled_back_release_leaves_its_configuration_out_of_the_next_green(world, settings):
    state = deployed(settings, started(world, settings, configuration={"FAULT_DROP_RATE": "1"}))
    state = state.with_sections(failure={"Error": "GreenUnhealthy", "Cause": "dropped everything"})
    rollback(settings, task_input(RollbackInput, state))
    following = validated_state(world, settings, version="1.2.0", artifact=world.artifact("after"))
    green = deploy_green(settings, following.release).green
    lam = boto3.client("lambda", region_name="eu-west-1")
    for fn, version in green.items():
        variables = lam.get_function_configuration(FunctionName=fn, Qualifier=version)["Environment"][
            "Variables"
        ]
        # Blue's variables carry forward; the rolled-back release's do not ($LATEST still holds them).
        assert "FAULT_DROP_RATE" not in variables and variables["SERVICE_VERSION"] == "1.2.0", variables
        assert variables["CACHE_SCHEMA_VERSION"] == "1"


def test_rollback_without_a_deploy_result_keeps_live(world, settings):
    state = started(world, settings).with_sections(failure={"Error": "DeploymentFailed", "Cause": "boom"})
    assert state.deploy is None and state.failure == Failure(error="DeploymentFailed", cause="boom")
    assert rollback(settings, task_input(RollbackInput, state)).restored == {fn: "1" for fn in FUNCTIONS}
    assert world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS}


def test_describe_failure_handles_plain_and_missing_causes():
    assert describe_failure(None) == "unknown failure"
    assert (
        describe_failure(Failure.model_validate({"Error": "States.Timeout", "Cause": ""})) == "States.Timeout"
    )
    assert describe_failure(Failure.model_validate({"Error": "X", "Cause": "not json"})) == "X: not json"


def test_record_start_is_idempotent_and_refuses_a_reused_id(world, settings):
    state = validated_state(world, settings)
    assert release_record.start(settings, state.release) == Recorded(recorded=True)
    assert release_record.start(settings, state.release) == Recorded(recorded=False)
    other = state.release.model_copy(update={"execution_arn": EXECUTION_ARN + "-other"})
    with pytest.raises(InvalidRelease, match="already used"):
        release_record.start(settings, other)
    assert [r["release_id"] for r in release_record.list_releases(settings)] == ["rel-1"]


def test_a_step_that_does_not_bake_has_no_minimum_unless_it_sets_one(world, settings):
    from contracts.release import TrafficStep
    from tasks.set_weights import step_of

    release = validated_state(world, settings, min_green_invocations=50).release
    steps = [
        TrafficStep(percent=10, bake_seconds=60),
        TrafficStep(percent=50, bake_seconds=0, min_green_invocations=3),
        TrafficStep(percent=100, bake_seconds=0),
    ]
    release = release.model_copy(update={"strategy": release.strategy.model_copy(update={"steps": steps})})
    at = "2026-01-01T00:00:00.000Z"
    assert [step_of(release, index, at).min_green_invocations for index in range(3)] == [50, 3, 0]


def test_green_is_counted_where_it_serves():
    from tasks.check_alarms import aliases_serving_green

    assert aliases_serving_green("invocations", 10) == ("live",)
    assert aliases_serving_green("invocations", 100) == ("live",)
    assert aliases_serving_green("connections", 50) == ("green",)
    # At 100% `live` serves green too, and the canary stage keeps its connections until Finalize.
    assert aliases_serving_green("connections", 100) == ("green", "live")
