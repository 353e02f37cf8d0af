"""Lambda code bundles built locally, without Docker.

A bundle is the project's own packages (e.g. `service/`) plus the third-party packages that
the Powertools layer does not ship (redis, websockets), installed as manylinux aarch64 wheels
for the Lambda runtime's Python. Dependencies are cached under `.build/lambda/deps-<hash>`,
keyed by the pinned requirements, so only the first synthesis needs the package index; the
bundle directory is keyed by the hash of its content so CDK's asset hash is stable.

Every bundle carries its recipe (`lambda-bundle.json`: packages, pinned requirements, Python
version, platform), so any asset directory in a cloud assembly can be rebuilt: `host_bundle`
builds the same recipe for this machine's platform and interpreter, which is how the tests and
the sandbox run each function from what would be deployed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Overridable so a benchmark can measure a cold cache without disturbing the shared one.
BUILD_DIR = Path(os.environ.get("LAMBDA_BUILD_DIR") or ROOT / ".build" / "lambda")
LOCK_FILE = ROOT / "requirements.lock"
PLATFORM = "manylinux2014_aarch64"
RECIPE_FILE = "lambda-bundle.json"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".mypy_cache")


class BundlingError(RuntimeError):
    """The Lambda bundle could not be built (usually: the package index is unreachable)."""


@dataclass(frozen=True)
class BundleRecipe:
    """What a bundle was built from: enough to build it again for another platform."""

    packages: tuple[str, ...]
    requirements: tuple[str, ...]  # `name==version`, from requirements.lock
    python_version: str  # e.g. "3.12"
    platform: str  # pip's --platform tag, e.g. manylinux2014_aarch64


def write_recipe(bundle: Path, recipe: BundleRecipe) -> None:
    # Deterministic content (no paths, no times): it is part of the asset hash.
    data = {
        "packages": list(recipe.packages),
        "requirements": sorted(recipe.requirements),
        "python_version": recipe.python_version,
        "platform": recipe.platform,
    }
    (bundle / RECIPE_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_recipe(bundle: Path) -> BundleRecipe:
    path = bundle / RECIPE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundlingError(f"{bundle}: no {RECIPE_FILE}; not a bundle built by infra/bundling.py") from None
    return BundleRecipe(
        tuple(data["packages"]),
        tuple(data["requirements"]),
        str(data["python_version"]),
        str(data["platform"]),
    )


def host_platform() -> str:
    """pip's platform tag for this machine, in the manylinux2014 family the Lambda bundles use."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if not sysconfig.get_platform().startswith("linux"):
        raise BundlingError(f"host bundles need Linux wheels; this is {sysconfig.get_platform()}")
    return f"manylinux2014_{machine}"


def host_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


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


@contextmanager
def build_lock(name: str) -> Iterator[None]:
    """One process at a time for `name` under BUILD_DIR (test workers and synthesis share the cache)."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with open(BUILD_DIR / f".{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _building(target: Path) -> Iterator[bool]:
    """Hold the build of `target`; yields True when another process completed it meanwhile, so
    the caller only returns it. A finished directory is never replaced, so whoever already uses it
    keeps reading whole files."""
    with build_lock(target.name):
        yield (target / ".complete").exists()


def _publish(scratch: Path, target: Path) -> None:
    if target.exists():  # an incomplete leftover of an interrupted build (complete ones are returned earlier)
        shutil.rmtree(target)
    os.replace(scratch, target)


def install_dependencies(
    requirements: Sequence[str],
    python_version: str,
    platform_tag: str = PLATFORM,
    *,
    prefix: str = "deps",
    constraints: Sequence[str] = (),
) -> Path:
    """Install the wheels once per (platform, python, requirements) into a cached directory."""
    key_parts = [platform_tag, python_version, *sorted(requirements)]
    if constraints:  # absent from the key of plain bundles, so their cached directories keep their names
        key_parts += ["-c", *sorted(constraints)]
    key = hashlib.sha256("\n".join(key_parts).encode()).hexdigest()[:16]
    target = BUILD_DIR / f"{prefix}-{key}"
    if (target / ".complete").exists():
        return target
    with _building(target) as done:
        if not done:
            _install(requirements, python_version, platform_tag, prefix, constraints, target)
    return target


def _install(
    requirements: Sequence[str],
    python_version: str,
    platform_tag: str,
    prefix: str,
    constraints: Sequence[str],
    target: Path,
) -> None:
    scratch = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=BUILD_DIR))
    constraint_args: list[str] = []
    if constraints:
        constraint_file = scratch.with_suffix(".constraints.txt")
        constraint_file.write_text("\n".join(constraints) + "\n", encoding="utf-8")
        constraint_args = ["-c", str(constraint_file)]
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--platform", platform_tag, "--only-binary=:all:", "--implementation", "cp",
        "--python-version", python_version, "--target", str(scratch), *constraint_args, *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
    if constraint_args:
        Path(constraint_args[1]).unlink(missing_ok=True)
    if result.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BundlingError(f"pip could not install {' '.join(requirements)} for {platform_tag}: {detail}")
    # Metadata directories are not needed at runtime and carry install-time paths.
    for extra in scratch.glob("*.dist-info"):
        for record in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            (extra / record).unlink(missing_ok=True)
    shutil.rmtree(scratch / "bin", ignore_errors=True)
    (scratch / ".complete").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    _publish(scratch, target)


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
    """Directory holding `packages` (from the repository root), the installed requirements and the recipe."""
    deps = install_dependencies(requirements, python_version) if requirements else None
    sources = [ROOT / package for package in packages]
    for source in sources:
        if not (source / "__init__.py").exists():
            raise BundlingError(f"{source.name}/ is not a Python package in {ROOT}")
    key = hashlib.sha256(
        ((deps.name if deps else "") + _tree_digest(sources, ROOT) + RECIPE_FILE).encode()
    ).hexdigest()[:16]
    bundle = BUILD_DIR / f"bundle-{'-'.join(packages)}-{key}"
    return _assemble(
        bundle, deps, sources, BundleRecipe(tuple(packages), tuple(requirements), python_version, PLATFORM)
    )


def _assemble(bundle: Path, deps: Path | None, sources: Sequence[Path], recipe: BundleRecipe) -> Path:
    """`bundle` made of the installed dependencies, the package sources and the recipe, once."""
    if (bundle / ".complete").exists():
        return bundle
    with _building(bundle) as done:
        if done:
            return bundle
        scratch = Path(tempfile.mkdtemp(prefix=f"{bundle.name.split('-', 1)[0]}-", dir=BUILD_DIR))
        if deps:
            shutil.copytree(deps, scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
        for source in sources:
            shutil.copytree(source, scratch / source.name, ignore=_IGNORED)
        write_recipe(scratch, recipe)
        (scratch / ".complete").touch()
        _publish(scratch, bundle)
    return bundle


def host_bundle(asset_dir: Path) -> Path:
    """The asset's recipe built for this machine: same code, same pins, host-platform wheels.

    The project packages are copied from the asset itself (what would be deployed, even if the
    repository changed since synthesis); only the wheels differ: this interpreter's Python
    version and platform instead of the Lambda runtime's. Cached under BUILD_DIR by content.
    """
    asset_dir = Path(asset_dir)
    recipe = read_recipe(asset_dir)
    python_version, platform_tag = host_python_version(), host_platform()
    deps = (
        install_dependencies(recipe.requirements, python_version, platform_tag)
        if recipe.requirements
        else None
    )
    sources = [asset_dir / package for package in recipe.packages]
    for source in sources:
        if not source.is_dir():
            raise BundlingError(
                f"{asset_dir}: the recipe names {source.name}/ but the asset has no such package"
            )
    key = hashlib.sha256(
        (
            (deps.name if deps else "") + _tree_digest(sources, asset_dir) + platform_tag + python_version
        ).encode()
    ).hexdigest()[:16]
    bundle = BUILD_DIR / f"host-{'-'.join(recipe.packages)}-{key}"
    return _assemble(
        bundle,
        deps,
        sources,
        BundleRecipe(recipe.packages, recipe.requirements, python_version, platform_tag),
    )
