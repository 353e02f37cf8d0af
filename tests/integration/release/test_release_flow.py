"""Whole releases through the synthesized definition: happy path, dry run, approval, concurrency."""

from __future__ import annotations

from orchestrator.engine import count_transitions
from tests.support.release_world import FUNCTIONS


def test_three_step_release_finalizes_green(harness):
    result = harness.run("rel-happy")
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert harness.world.aliases("live") == {fn: ("2", {}) for fn in FUNCTIONS}
    assert result.states_entered().count("Bake") == 3
    assert count_transitions(result.history) <= 60
    harness.assert_invariant("rel-happy", result)
    transitions = [m["transition"] for m in harness.world.notifications()]
    assert transitions == [
        "ReleaseStarted",
        "GreenDeployed",
        "TrafficShifted",
        "TrafficShifted",
        "TrafficShifted",
        "SUCCEEDED",
    ]


def test_dry_run_never_touches_live(harness):
    result = harness.run("rel-dry", dry_run=True)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert harness.world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS}
    assert harness.world.aliases("green") == {fn: ("1", {}) for fn in FUNCTIONS}
    assert "CleanUpScratchCache" in result.states_entered()
    harness.assert_invariant("rel-dry", result)


def test_approval_approved_continues(harness):
    execution = harness.start("rel-approve", approval="required")
    token = execution.wait_for_task_token(timeout=30)
    record = harness.world.record("rel-approve")
    assert record["approval_token"] == token
    approval = [m for m in harness.world.notifications() if m["transition"] == "ApprovalRequested"][0]
    assert "orchestrator release approve rel-approve" in approval["summary"]
    execution.send_task_success({"approved_by": "bob"}, token=token)
    result = execution.wait(60)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert "approval_token" not in harness.world.record("rel-approve")
    harness.assert_invariant("rel-approve", result)


def test_approval_rejected_rolls_back(harness):
    execution = harness.start("rel-reject", approval="required")
    execution.send_task_failure("ApprovalRejected", "rejected by bob: not during the sale")
    result = execution.wait(60)
    assert result.error == "ReleaseRolledBack"
    assert result.cause.startswith("ApprovalRejected")
    harness.assert_invariant("rel-reject", result)


def test_approval_timeout_rolls_back(harness):
    execution = harness.start("rel-timeout", approval="required", approval_timeout_seconds=60)
    execution.wait_for_task_token(timeout=30)
    harness.engine.clock.advance(61)  # nobody answers within the timeout
    result = execution.wait(30)
    assert result.error == "ReleaseRolledBack"
    assert result.cause.startswith("States.Timeout")
    harness.assert_invariant("rel-timeout", result)


def test_two_releases_at_once_one_proceeds(harness):
    first = harness.start("rel-first", approval="required")
    first.wait_for_task_token(timeout=30)
    second = harness.run("rel-second", artifact=harness.world.artifact("other"))
    assert second.status == "FAILED" and second.error == "ReleaseInProgress"
    assert harness.world.lock()["release_id"] == "rel-first"
    first.send_task_success({"approved_by": "bob"})
    result = first.wait(60)
    assert result.status == "SUCCEEDED"
    harness.assert_invariant("rel-first", result)
    harness.assert_invariant("rel-second", second)


def test_invalid_request_is_rejected_before_the_lock(harness):
    result = harness.run("rel-bad", strategy={"steps": [{"percent": 50, "bake_seconds": 1}]})
    assert result.error == "InvalidRelease"
    assert "strategy.steps: the last step must be 100 percent" in result.cause
    assert result.states_entered() == ["ValidateRequest", "RequestRejected"]
    harness.assert_invariant("rel-bad", result)
