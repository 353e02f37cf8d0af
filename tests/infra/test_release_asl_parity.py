"""The release tests run the very ASL that `cdk synth` writes for the staging stage.

`tests/integration/release/` synthesizes `release_definition` in a small stack (fast, and the
task functions carry the handler paths the engine imports). This test resolves both templates'
release state machine with the engine's intrinsics resolver and requires the two definitions to
be identical, so a change to the stage's wiring cannot drift away from what the release tests run.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import cx_api

from orchestrator.engine import state_machines
from tests.infra.conftest import main_template_json
from tests.support.release_stack import synth_release_template


def _release_asl(template: dict[str, Any]) -> dict[str, Any]:
    specs = [spec for spec in state_machines(template).values() if spec.name == "staging-release"]
    assert len(specs) == 1, [spec.name for spec in state_machines(template).values()]
    return specs[0].asl


def test_release_tests_run_the_staging_stage_definition(synth_assembly: cx_api.CloudAssembly) -> None:
    stage = _release_asl(main_template_json(synth_assembly, "staging"))
    tested = _release_asl(synth_release_template("staging"))
    assert list(stage["States"]) == list(tested["States"])
    for name, state in stage["States"].items():
        assert state == tested["States"][name], name
    # Only the state machine's description may differ (the stage adds one): it does not run.
    stage.pop("Comment", None)
    tested.pop("Comment", None)
    assert stage == tested
