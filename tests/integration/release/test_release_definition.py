"""The synthesized release definition is valid ASL (asl-validator catches graph errors moto misses)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from orchestrator.engine import ResourceMap, state_machines
from tests.integration.release.conftest import SANDBOX
from tests.support.release_stack import node_binary

ROOT = Path(__file__).resolve().parents[3]


def test_release_definition_passes_asl_validator(release_template, tmp_path):
    specs = state_machines(release_template, ResourceMap(release_template, SANDBOX))
    assert specs, "the template holds no state machine"
    for spec in specs.values():
        definition = spec.definition if isinstance(spec.definition, str) else json.dumps(spec.definition)
        path = tmp_path / f"{spec.name}.asl.json"
        path.write_text(definition)
        validator = ROOT / "node_modules" / "asl-validator" / "dist" / "bin" / "asl-validator.js"
        command = (
            [node_binary(), str(validator)]
            if validator.exists()
            else [str(ROOT / "node_modules/.bin/asl-validator")]
        )
        completed = subprocess.run(
            [*command, "--json-path", str(path)], capture_output=True, text=True, check=False
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


def test_every_state_is_reachable_and_tasks_retry_with_jitter(release_template):
    spec = next(iter(state_machines(release_template, ResourceMap(release_template, SANDBOX)).values()))
    asl = json.loads(spec.definition) if isinstance(spec.definition, str) else spec.definition
    states = asl["States"]
    for name, state in states.items():
        if state["Type"] == "Task":
            assert state.get("Retry"), f"{name} has no Retry"
            assert all(r.get("JitterStrategy") == "FULL" for r in state["Retry"]), name
            assert state.get("Catch"), f"{name} has no Catch"
    assert states["Bake"]["Type"] == "Wait" and states["Bake"]["SecondsPath"] == "$.shift.bake_seconds"
