"""Whole releases through the synthesized definition: happy path, dry run, approval, concurrency."""

from __future__ import annotations

from orchestrator.engine import count_transitions
from tests.release_world import FUNCTIONS


def test_three_step_release_finalizes_green(harness):
    result = harness.run("rel-happy")
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert harness.world.aliases("live") == {fn: ("2", {}) for fn in FUNCTIONS}
    assert result.states_entered().count("Bake") == 3
    assert count_transitions(result.history) <= 60
    harness.assert_invariant("rel-happy", result)
    transitions = [m["transition"] for m in harness.world.notifications()]
    assert transitions == ["ReleaseStarted", "GreenDeployed", "TrafficShifted", "TrafficShifted", "TrafficShifted", "SUCCEEDED"]
