"""One background sandbox per test module, in a private directory, stopped afterwards.

The sandbox runs what would be deployed: every function in its own worker process from its
asset, with its role's credentials, and every AWS call judged against the synthesized policies.
When the module's sandbox stops, no call it observed may have been denied.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.lambda_runtime import MODE_VARIABLE
from orchestrator.sandbox.daemon import start_background, stop_background
from orchestrator.sandbox.state import SandboxState
from tests.e2e.iam_checks import assert_no_denials
from tests.e2e.sandbox_clock import quiet_clock_start


@pytest.fixture(scope="module")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture(scope="module")
def sandbox(sandbox_dir: Path, synthesized: Path, request: pytest.FixtureRequest) -> Iterator[SandboxState]:
    # `synthesized` points the sandbox at the session's cloud assembly (ORCHESTRATOR_CDK_OUT).
    # The stage's schedules fire on the sandbox's clock only in modules that ask for it
    # (SANDBOX_SCHEDULES = True): elsewhere a weekly DR drill the 60x clock crosses (Wednesday
    # 09:00 UTC) would take the environment's lock from the releases under test. The clock starts
    # at the schedules' longest quiet gap (sandbox_clock.py), whatever the time of day.
    saved = {name: os.environ.get(name) for name in ("ORCHESTRATOR_SANDBOX_DIR", MODE_VARIABLE)}
    os.environ["ORCHESTRATOR_SANDBOX_DIR"] = str(sandbox_dir)
    os.environ[MODE_VARIABLE] = "isolated"
    state = start_background(
        sandbox_dir,
        time_scale=60.0,
        schedules=bool(getattr(request.module, "SANDBOX_SCHEDULES", False)),
        clock_start=quiet_clock_start(),
    )
    try:
        yield state
    finally:
        stop_background(sandbox_dir)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    assert_no_denials(sandbox_dir)
