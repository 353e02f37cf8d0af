"""Whole releases with every task in its own Lambda worker (its asset, template settings, role)."""

from __future__ import annotations

from tests.support.release_world import FUNCTIONS


def test_three_step_release_finalizes_green_isolated(isolated_harness):
    result = isolated_harness.run("rel-isolated", timeout=120)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert isolated_harness.world.aliases("live") == {fn: ("2", {}) for fn in FUNCTIONS}
    isolated_harness.assert_invariant("rel-isolated", result)
    stats = isolated_harness.engine.lambda_workers().stats()
    assert stats["staging-release-deploy-green"]["invocations"] == 1
    # Warm reuse: SetWeights runs once per step, on one worker.
    assert stats["staging-release-set-weights"]["invocations"] == 3
    assert stats["staging-release-set-weights"]["cold_starts"] == 1


def test_rejected_request_routes_on_the_workers_error_type(isolated_harness):
    # InvalidRelease is the errorType of the worker's error payload; the Catch routes on it.
    result = isolated_harness.run(
        "rel-isolated-bad", strategy={"steps": [{"percent": 50, "bake_seconds": 1}]}, timeout=120
    )
    assert result.error == "InvalidRelease", (result.error, result.cause)
    assert "strategy.steps: the last step must be 100 percent" in result.cause
    assert result.states_entered() == ["ValidateRequest", "RequestRejected"]
    isolated_harness.assert_invariant("rel-isolated-bad", result)
