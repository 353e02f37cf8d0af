"""Where a worker's code comes from: the function's asset, built for this host, and the runtime.

`layout_for_asset(asset_dir)` takes an asset directory of a cloud assembly (a bundle that
carries its recipe) and rebuilds it for this machine with `infra.bundling.host_bundle`, so the
worker runs what would be deployed. The runtime directory (boto3/botocore at the Lambda
runtime's versions) and the layer directory (Powertools at the layer's version) come from
`infra.bundling` when it provides them.

Until then, and for templates without cdk.out assets (the integration tests synthesize
inline-code stacks), `stand_in_layout()` is a development stand-in: a copy of the repository's
Lambda packages as the asset and this interpreter's site-packages as the runtime directory.
Isolation from the repository still holds (nothing outside the copy is importable as a
project module), but the third-party versions are the host's, not Lambda's.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from orchestrator.lambda_runtime.config import CodeLayout, host_site_packages
from orchestrator.paths import REPO_ROOT

# What the task and service assets ship of the repository (contracts/ once it exists).
LAMBDA_PACKAGES = ("tasks", "service", "contracts")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache")
_lock = threading.Lock()
_stand_ins: dict[tuple[str, ...], Path] = {}


def runtime_dirs() -> tuple[Path, tuple[Path, ...]]:
    """(runtime dir, layer dirs): Lambda's boto3/botocore and the Powertools layer when
    infra.bundling builds them, else this interpreter's site-packages (development stand-in)."""
    try:
        from infra import bundling
    except ImportError:  # pragma: no cover - infra is part of the repository
        return host_site_packages(), ()
    builder = getattr(bundling, "host_runtime_dirs", None)
    if builder is not None:
        runtime, layers = builder()
        return Path(runtime), tuple(Path(p) for p in layers)
    return host_site_packages(), ()


def layout_for_asset(asset_dir: Path) -> CodeLayout:
    """The host build of a cdk.out asset (same recipe, host wheels) with the runtime and layers."""
    from infra import bundling

    host = bundling.host_bundle(asset_dir)
    runtime, layers = runtime_dirs()
    return CodeLayout(Path(host), runtime, layers)


def stand_in_layout(packages: Iterable[str] = LAMBDA_PACKAGES) -> CodeLayout:
    """A temporary copy of the repository's Lambda packages as the asset (one per process)."""
    wanted = tuple(p for p in packages if (REPO_ROOT / p / "__init__.py").exists())
    with _lock:
        asset = _stand_ins.get(wanted)
        if asset is None:
            asset = Path(tempfile.mkdtemp(prefix="lambda-asset-"))
            for package in wanted:
                shutil.copytree(REPO_ROOT / package, asset / package, ignore=_IGNORED)
            _stand_ins[wanted] = asset
            atexit.register(shutil.rmtree, asset, True)
    runtime, layers = runtime_dirs()
    return CodeLayout(asset, runtime, layers)
