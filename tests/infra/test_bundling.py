"""Local Lambda bundling: pins from the lock file, aarch64 wheels, content-addressed bundles."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import bundling


def test_pins_come_from_the_lock_file(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("redis==8.1.0\npydantic_core==2.50.5\n")
    assert bundling.pinned(["redis", "pydantic-core"], lock) == ["redis==8.1.0", "pydantic-core==2.50.5"]
    with pytest.raises(bundling.BundlingError, match="no pinned version for websockets"):
        bundling.pinned(["websockets"], lock)


def test_service_bundle_has_package_and_arm64_dependencies() -> None:
    requirements = bundling.pinned(["redis", "pydantic", "pydantic_core"])
    bundle = bundling.build_bundle(["service"], requirements)
    assert (bundle / "service" / "__init__.py").exists()
    assert (bundle / "service" / "catalog.py").exists()
    assert (bundle / "redis" / "__init__.py").exists()
    # pydantic_core is compiled: the wheel must be the Lambda runtime's (CPython 3.12, aarch64).
    compiled = list((bundle / "pydantic_core").glob("_pydantic_core*.so"))
    assert compiled and all("aarch64" in so.name and "cpython-312" in so.name for so in compiled)
    assert not list(bundle.rglob("__pycache__"))
    # Same inputs, same directory: CDK's asset hash is stable across synths.
    assert bundling.build_bundle(["service"], requirements) == bundle


def test_missing_package_is_named() -> None:
    with pytest.raises(bundling.BundlingError, match="no_such_package/ is not a Python package"):
        bundling.build_bundle(["no_such_package"], [])
