"""One background sandbox per test module, in a private directory, stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.sandbox.daemon import start_background, stop_background
from orchestrator.sandbox.state import SandboxState


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxState]:
    directory: Path = tmp_path_factory.mktemp("sandbox")
    previous = os.environ.get("ORCHESTRATOR_SANDBOX_DIR")
    os.environ["ORCHESTRATOR_SANDBOX_DIR"] = str(directory)
    state = start_background(directory, time_scale=60.0)
    try:
        yield state
    finally:
        stop_background(directory)
        if previous is None:
            os.environ.pop("ORCHESTRATOR_SANDBOX_DIR", None)
        else:
            os.environ["ORCHESTRATOR_SANDBOX_DIR"] = previous
