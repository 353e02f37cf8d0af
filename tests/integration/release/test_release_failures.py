"""A failure of every task at every position ends in the expected terminal state, invariant intact."""

from __future__ import annotations

import pytest

from tests.integration.release.conftest import error_of, throttle_fault, timeout_fault

# Task key -> the execution's expected error when that task fails for good.
EXPECTED = {
    "validate_request": "RuntimeError",
    "record_release": "RuntimeError",
    "deploy_green": "ReleaseRolledBack",
    "warm_cache": "ReleaseRolledBack",
    "synthetic_checks": "ReleaseRolledBack",
    "set_weights": "ReleaseRolledBack",
    "check_alarms": "ReleaseRolledBack",
    "judge_canary": "ReleaseRolledBack",
    "finalize": "ReleaseRolledBack",
}


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_a_task_that_raises_ends_the_release_safely(harness, task):
    harness.fail_next(task, error_of(RuntimeError, f"{task} broke"))
    result = harness.run(f"rel-fail-{task.replace('_', '-')}")
    assert result.status == "FAILED"
    assert result.error == EXPECTED[task], (result.error, result.cause)
    harness.assert_invariant(f"rel-fail-{task.replace('_', '-')}", result)


def test_throttling_within_the_retries_is_absorbed(harness):
    harness.fail_next("deploy_green", throttle_fault, throttle_fault)
    result = harness.run("rel-throttled")
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    harness.assert_invariant("rel-throttled", result)


def test_throttling_beyond_the_retries_rolls_back(harness):
    harness.fail_next("set_weights", *([throttle_fault] * 5))  # first call + 4 retries
    result = harness.run("rel-throttled-out")
    assert result.error == "ReleaseRolledBack"
    assert "Lambda.TooManyRequestsException" in result.cause
    harness.assert_invariant("rel-throttled-out", result)


def test_a_timeout_is_retried_once_then_rolls_back(harness):
    harness.fail_next("check_alarms", timeout_fault)
    assert harness.run("rel-timeout-once").status == "SUCCEEDED"
    harness.fail_next("check_alarms", timeout_fault, timeout_fault)
    result = harness.run("rel-timeout-twice", artifact=harness.world.artifact("other"))
    assert result.error == "ReleaseRolledBack" and "Sandbox.Timedout" in result.cause
    harness.assert_invariant("rel-timeout-twice", result)


def test_an_alarm_during_a_bake_rolls_back(harness):
    from tests.support.release_world import GUARD_ALARMS

    def alarm_fires(context):
        harness.world.set_alarm(GUARD_ALARMS[0], "ALARM")

    # Fires while step 2 bakes: CheckAlarms of step 2 sees it.
    harness.faults["check_alarms"] = [lambda context: None, alarm_fires]
    result = harness.run("rel-alarm")
    assert result.error == "ReleaseRolledBack" and "AlarmTriggered" in result.cause
    assert result.states_entered().count("Bake") == 2
    harness.assert_invariant("rel-alarm", result)


def test_a_green_judged_worse_than_blue_rolls_back_with_the_numbers(harness):
    from datetime import timedelta

    from tasks.common import parse_time
    from tasks.judge_canary import JudgeCanaryInput
    from tests.support.release_world import FUNCTIONS, record_version_traffic

    def slower_green(context):
        # What the first step's bake measured: green 250 ms at p99, blue 12 ms, same traffic.
        judged = JudgeCanaryInput.model_validate(harness.last_event["judge_canary"])
        during = parse_time(judged.shift.shifted_at) + timedelta(seconds=1)
        for fn in FUNCTIONS[:2]:
            record_version_traffic(fn, judged.deploy.green[fn], [250.0] * 150, when=during)
            record_version_traffic(fn, judged.deploy.blue[fn], [12.0] * 1350, when=during)

    harness.faults["judge_canary"] = [slower_green]
    result = harness.run("rel-judged")
    assert result.error == "ReleaseRolledBack", (result.error, result.cause)
    assert "CanaryFailed" in result.cause and "p99 green 250.0 ms vs blue 12.0 ms (x20.83)" in result.cause
    assert result.states_entered().count("JudgeCanary") == 1
    harness.assert_invariant("rel-judged", result)
    verdicts = harness.world.record("rel-judged")["canary_verdicts"]
    assert [(v["index"], v["percent"], v["verdict"]) for v in verdicts] == [(0, 10, "fail")]


@pytest.mark.parametrize("which", ["guard", "composite"])
def test_a_gate_alarm_missing_from_describe_alarms_rolls_back_naming_it(harness, which):
    import boto3

    from tests.support.release_world import GUARD_ALARMS, HEALTH_ALARM, REGION

    # What a renamed alarm or a DescribeAlarms permission scoped to alarm ARNs (no composites) looks like.
    missing = GUARD_ALARMS[-1] if which == "guard" else HEALTH_ALARM
    boto3.client("cloudwatch", region_name=REGION).delete_alarms(AlarmNames=[missing])
    release_id = f"rel-missing-{which}"
    result = harness.run(release_id)
    assert result.error == "ReleaseRolledBack", (result.error, result.cause)
    assert "GreenUnhealthy" in result.cause and missing in result.cause, result.cause
    assert result.states_entered().count("Bake") == 1
    harness.assert_invariant(release_id, result)
