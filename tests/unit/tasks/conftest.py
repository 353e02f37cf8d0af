from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from tests.support.release_world import World, build_world


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with mock_aws():
        built = build_world()
        for name, value in built.env().items():
            monkeypatch.setenv(name, value)
        yield built


@pytest.fixture
def settings(world: World):
    from tasks.settings import ReleaseTaskSettings

    return ReleaseTaskSettings.from_env()
