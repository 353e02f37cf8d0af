"""Lambda code bundles built locally, without Docker.

A bundle is the project's own packages (e.g. `service/`) plus the third-party packages that
the Powertools layer does not ship (redis, websockets), installed as manylinux aarch64 wheels
for the Lambda runtime's Python. Dependencies are cached under `.build/lambda/deps-<hash>`,
keyed by the pinned requirements, so only the first synthesis needs the package index; the
bundle directory is keyed by the hash of its content so CDK's asset hash is stable.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Overridable so a benchmark can measure a cold cache without disturbing the shared one.
BUILD_DIR = Path(os.environ.get("LAMBDA_BUILD_DIR") or ROOT / ".build" / "lambda")
LOCK_FILE = ROOT / "requirements.lock"
PLATFORM = "manylinux2014_aarch64"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".mypy_cache")


class BundlingError(RuntimeError):
    """The Lambda bundle could not be built (usually: the package index is unreachable)."""


def pinned(names: Iterable[str], lock_file: Path = LOCK_FILE) -> list[str]:
    """`name==version` for each name, taken from requirements.lock (one source of pins)."""
    pins: dict[str, str] = {}
    for line in lock_file.read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[_normalise(name)] = version.strip()
    missing = [name for name in names if _normalise(name) not in pins]
    if missing:
        raise BundlingError(f"{lock_file.name}: no pinned version for {', '.join(missing)}")
    return [f"{name}=={pins[_normalise(name)]}" for name in names]


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def install_dependencies(requirements: Sequence[str], python_version: str) -> Path:
    """Install the wheels once per (requirements, python) into a cached directory."""
    key = hashlib.sha256("\n".join([PLATFORM, python_version, *sorted(requirements)]).encode()).hexdigest()[:16]
    target = BUILD_DIR / f"deps-{key}"
    if (target / ".complete").exists():
        return target
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="deps-", dir=BUILD_DIR))
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--platform", PLATFORM, "--only-binary=:all:", "--implementation", "cp",
        "--python-version", python_version, "--target", str(scratch), *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
    if result.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BundlingError(f"pip could not install {' '.join(requirements)} for {PLATFORM}: {detail}")
    # Metadata directories are not needed at runtime and carry install-time paths.
    for extra in scratch.glob("*.dist-info"):
        for record in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            (extra / record).unlink(missing_ok=True)
    shutil.rmtree(scratch / "bin", ignore_errors=True)
    (scratch / ".complete").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    os.replace(scratch, target)
    return target


def _tree_digest(paths: Iterable[Path], base: Path) -> str:
    digest = hashlib.sha256()
    for root in paths:
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = file.relative_to(base)
            if "__pycache__" in relative.parts or file.suffix in {".pyc", ".pyo"} or file.name == ".complete":
                continue
            digest.update(str(relative).encode())
            digest.update(b"\0")
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def build_bundle(
    packages: Sequence[str],
    requirements: Sequence[str],
    python_version: str = "3.12",
) -> Path:
    """Directory holding `packages` (from the repository root) and the installed requirements."""
    deps = install_dependencies(requirements, python_version) if requirements else None
    sources = [ROOT / package for package in packages]
    for source in sources:
        if not (source / "__init__.py").exists():
            raise BundlingError(f"{source.name}/ is not a Python package in {ROOT}")
    key = hashlib.sha256(
        ((deps.name if deps else "") + _tree_digest(sources, ROOT)).encode()
    ).hexdigest()[:16]
    bundle = BUILD_DIR / f"bundle-{'-'.join(packages)}-{key}"
    if (bundle / ".complete").exists():
        return bundle
    scratch = Path(tempfile.mkdtemp(prefix="bundle-", dir=BUILD_DIR))
    if deps:
        shutil.copytree(deps, scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
    for source in sources:
        shutil.copytree(source, scratch / source.name, ignore=_IGNORED)
    (scratch / ".complete").touch()
    if bundle.exists():
        shutil.rmtree(bundle)
    os.replace(scratch, bundle)
    return bundle
