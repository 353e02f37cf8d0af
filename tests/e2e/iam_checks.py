"""What the e2e tests require of the sandbox's IAM observations (orchestrator/iam).

Every sandbox the e2e tests start runs its functions in worker processes with their own roles'
credentials, and judges every call against the synthesized policies. On a happy path nothing
may be denied; the permission tour (test_permissions.py) also holds the roles to what they use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.sandbox.daemon import IAM_OBSERVATIONS, IAM_REPORT


def observations(directory: Path) -> list[dict[str, Any]]:
    path = directory / IAM_OBSERVATIONS
    assert path.exists(), f"the sandbox in {directory} wrote no IAM observations (was IAM enforced?)"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def report(directory: Path) -> dict[str, Any]:
    return dict(json.loads((directory / f"{IAM_REPORT}.json").read_text(encoding="utf-8")))


def describe(observation: dict[str, Any]) -> str:
    return (
        f"{observation['caller']}: {observation['action']} on {observation['resource']} "
        f"({observation['operation']}, {observation['verdict']} {observation['reason']})"
    )


def assert_no_denials(directory: Path) -> list[dict[str, Any]]:
    """Every call observed was allowed (unmapped operations count as denied)."""
    seen = observations(directory)
    denied = [o for o in seen if o["verdict"] != "Allowed"]
    assert not denied, "calls denied on a happy path:\n" + "\n".join(describe(o) for o in denied)
    return seen
