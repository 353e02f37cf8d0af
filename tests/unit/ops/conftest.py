from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from moto import mock_aws

from tests.support.ops_world import OpsWorld, build_ops_world


@pytest.fixture
def ops_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpsWorld]:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    with mock_aws():
        world = build_ops_world()
        for name, value in world.env().items():
            monkeypatch.setenv(name, value)
        yield world


@pytest.fixture
def clock() -> Iterator[list[datetime]]:
    """The tasks' clock, set by the test (`clock[0] = ...`)."""
    from tasks.common import set_clock

    now = [datetime(2026, 3, 10, 3, 0, tzinfo=UTC)]
    set_clock(lambda: now[0])
    yield now
    set_clock(None)
