"""Snapshot of each stage's templates (syrupy), with asset hashes masked.

A snapshot changes only when a template really changes; review the diff, then refresh it with
`pytest tests/infra/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk import cx_api

from contracts import names
from tests.infra.conftest import stage_templates

_HASH = re.compile(r"[0-9a-f]{64}")


def _masked(template: dict[str, Any]) -> Any:
    text = json.dumps(template, sort_keys=True, indent=1)
    # Asset object keys/hashes (code bundles) and CDK's hash-suffixed asset parameters.
    return json.loads(_HASH.sub("<asset-hash>", text))


@pytest.mark.parametrize("env", names.ENVIRONMENTS)
def test_stage_templates_snapshot(env: str, synth_assembly: cx_api.CloudAssembly, snapshot: Any) -> None:
    templates = stage_templates(synth_assembly, env)
    assert names.stack_name(env) in templates
    assert {name: _masked(template) for name, template in sorted(templates.items())} == snapshot
