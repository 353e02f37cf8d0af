"""Where a worker's code comes from: the function's asset, built for this host, and the runtime.

`layout_for_asset(asset_dir)` takes an asset directory of a cloud assembly (a bundle that
carries its recipe, `lambda-bundle.json`) and rebuilds it for this machine with
`infra.bundling.host_bundle` (same packages and pins, host-platform wheels), so the worker
runs what would be deployed. The runtime directory (boto3/botocore at the Lambda Python
runtime's versions) and the layer directory (Powertools at the layer version the template
names) come from `infra.lambda_assets.lambda_runtime_dirs`. All of it is cached under
`.build/lambda/`: only the first run on a machine needs the package index.

`AssemblyLayouts(template_path)` maps every Python function of a synthesized template (by
logical id or physical name) to its layout; the sandbox and `LocalEngine.load_template(...,
assembly_dir=...)` use it.

`stand_in_layout()` is a development stand-in for templates without built assets (unit tests
with a tmp asset, inline-code test stacks): a copy of the repository's Lambda packages as the
asset and this interpreter's site-packages as the runtime directory. Isolation from the
repository still holds, but the third-party versions are the host's, not Lambda's.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.lambda_runtime.config import CodeLayout, host_site_packages
from orchestrator.paths import REPO_ROOT

if TYPE_CHECKING:
    from infra.lambda_assets import LambdaFunction

# What the task and service assets ship of the repository.
LAMBDA_PACKAGES = ("tasks", "service", "contracts")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache")
_lock = threading.Lock()
_stand_ins: dict[tuple[str, ...], Path] = {}
_host_bundles: dict[Path, Path] = {}
_runtimes: dict[tuple[str | None, int | None], tuple[Path, tuple[Path, ...]]] = {}


def runtime_dirs(
    runtime: str | None = None, powertools_layer_version: int | None = None
) -> tuple[Path, tuple[Path, ...]]:
    """(runtime dir, layer dirs) for this host: boto3/botocore as the Lambda runtime ships them
    and the Powertools layer; defaults from the configuration (`lambdas.*`)."""
    key = (runtime, powertools_layer_version)
    with _lock:
        found = _runtimes.get(key)
    if found is None:
        from infra.lambda_assets import lambda_runtime_dirs

        runtime_dir, layer_dir = lambda_runtime_dirs(runtime, powertools_layer_version)
        found = (Path(runtime_dir), (Path(layer_dir),))
        with _lock:
            _runtimes[key] = found
    return found


def host_asset(asset_dir: Path) -> Path:
    """The host-platform build of a cdk.out asset (cached per asset directory in this process)."""
    asset_dir = Path(asset_dir).resolve()
    with _lock:
        found = _host_bundles.get(asset_dir)
    if found is None:
        from infra import bundling

        found = Path(bundling.host_bundle(asset_dir))
        with _lock:
            _host_bundles[asset_dir] = found
    return found


def layout_for_asset(
    asset_dir: Path, *, runtime: str | None = None, powertools_layer_version: int | None = None
) -> CodeLayout:
    """The host build of a cdk.out asset (same recipe, host wheels) with the runtime and layers."""
    runtime_dir, layers = runtime_dirs(runtime, powertools_layer_version)
    return CodeLayout(host_asset(asset_dir), runtime_dir, layers)


def layout_for_function(function: LambdaFunction) -> CodeLayout:
    """A template function's layout: its own asset, its runtime, its Powertools layer version."""
    return layout_for_asset(
        function.asset_dir,
        runtime=function.runtime,
        powertools_layer_version=function.powertools_layer_version,
    )


class AssemblyLayouts:
    """The Python functions of synthesized templates with their assets (from the templates'
    directories: a cloud assembly's asset manifests, or `aws:asset:path` metadata)."""

    def __init__(self, template_paths: Iterable[Path]) -> None:
        from infra.lambda_assets import template_file_functions

        self._functions: dict[str, LambdaFunction] = {}
        for path in template_paths:
            self._add(partial(template_file_functions, Path(path)), str(path))

    @classmethod
    def of_template(cls, template: Mapping[str, Any], directory: Path) -> AssemblyLayouts:
        """The functions of a template (already read) whose assets sit in `directory`."""
        from infra import lambda_assets

        layouts = cls(())
        layouts._add(
            lambda: lambda_assets.template_functions(
                template, Path(directory), assets=lambda_assets.file_assets(Path(directory))
            ),
            str(directory),
        )
        return layouts

    def _add(self, read: Callable[[], list[LambdaFunction]], where: str) -> None:
        try:
            functions = read()
        except ValueError as exc:
            raise ValueError(
                f"{where}: {exc}; isolated Lambda workers run each function from its cdk.out asset "
                "(synthesize the stage, or run the functions in-process)"
            ) from exc
        for function in functions:
            self._functions[function.logical_id] = function
            self._functions[function.function_name] = function

    def function(self, name_or_logical_id: str) -> LambdaFunction | None:
        return self._functions.get(name_or_logical_id)

    def layout(self, name_or_logical_id: str) -> CodeLayout:
        """The function's layout (its host asset is built on first use; KeyError if unknown)."""
        function = self._functions.get(name_or_logical_id)
        if function is None:
            raise KeyError(f"{name_or_logical_id}: not a Python function with an asset in these templates")
        return layout_for_function(function)

    def asset_dirs(self) -> list[Path]:
        return sorted({f.asset_dir for f in self._functions.values()})

    def prepare(self) -> list[CodeLayout]:
        """Build every asset's host bundle and the runtime dirs now (one layout per asset)."""
        seen: dict[Path, CodeLayout] = {}
        for function in self._functions.values():
            if function.asset_dir not in seen:
                seen[function.asset_dir] = layout_for_function(function)
        return list(seen.values())


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
    return CodeLayout(asset, host_site_packages(), ())
