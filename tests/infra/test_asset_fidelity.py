"""Layer 2 of fidelity: every Python function runs from its own asset, not from the repository.

For every Python `AWS::Lambda::Function` of every template of both stages:
- its handler's import closure (function-level imports included) resolves inside its own asset,
  the Powertools layer, the Lambda runtime's SDK or the standard library;
- with the asset's recipe built for this machine (same code and pins, host wheels), the handler
  imports in `python -I -S` whose sys.path holds only that asset, the layer and the runtime.
Probes prove both checks fail on a module that imports what the asset does not ship.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from infra import bundling
from infra.asset_imports import isolated_import, unresolved_imports
from infra.lambda_assets import LambdaFunction, isolated_sys_path, lambda_runtime_dirs, python_functions

if TYPE_CHECKING:
    from aws_cdk import cx_api


@pytest.fixture(scope="module")
def assembly_dir(synth_assembly: cx_api.CloudAssembly) -> Path:
    return Path(synth_assembly.directory)


@pytest.fixture(scope="module")
def functions(assembly_dir: Path) -> list[LambdaFunction]:
    return python_functions(assembly_dir)


@pytest.fixture(scope="module")
def runtime_dirs() -> tuple[Path, Path]:
    return lambda_runtime_dirs()


@pytest.fixture(scope="module")
def host_assets(functions: list[LambdaFunction]) -> dict[Path, Path]:
    """Synthesized asset dir -> the same recipe built for this machine."""
    return {asset: bundling.host_bundle(asset) for asset in sorted({f.asset_dir for f in functions})}


def _raw_python_function_count(assembly_dir: Path) -> dict[str, int]:
    """Counted straight from the template files, independently of `python_functions`."""
    counts: dict[str, int] = {}
    for template in sorted(assembly_dir.glob("**/*.template.json")):
        resources = json.loads(template.read_text(encoding="utf-8")).get("Resources", {})
        stage = template.parent.name if template.parent != assembly_dir else ""
        counts[stage] = counts.get(stage, 0) + sum(
            1
            for resource in resources.values()
            if resource.get("Type") == "AWS::Lambda::Function"
            and str(resource.get("Properties", {}).get("Runtime", "")).startswith("python")
        )
    return {stage: count for stage, count in counts.items() if count}


def test_every_python_function_is_checked(
    assembly_dir: Path, functions: list[LambdaFunction], record_property: Callable[[str, object], None]
) -> None:
    per_stage: dict[str, int] = defaultdict(int)
    for function in functions:
        per_stage[function.stage] += 1
        assert (function.asset_dir / bundling.RECIPE_FILE).is_file(), (
            f"{function.function_name}: asset without recipe"
        )
    assert dict(per_stage) == _raw_python_function_count(assembly_dir)
    assert len(per_stage) == 2, f"expected both stages, found {sorted(per_stage)}"
    for stage, count in sorted(per_stage.items()):
        record_property(f"python_functions_{stage}", count)
        print(f"asset fidelity: {count} Python functions checked in {stage}")
    record_property("python_functions_total", len(functions))
    print(f"asset fidelity: {len(functions)} Python functions checked in all")


def test_import_closure_resolves_inside_each_asset(
    functions: list[LambdaFunction], runtime_dirs: tuple[Path, Path]
) -> None:
    runtime_dir, layer_dir = runtime_dirs
    problems = []
    closures: dict[tuple[Path, str], list[str]] = {}
    for function in functions:
        key = (function.asset_dir, function.module)
        if key not in closures:
            found = unresolved_imports(
                function.asset_dir, function.module, [function.asset_dir, layer_dir, runtime_dir]
            )
            closures[key] = [problem.describe() for problem in found]
        problems += [f"{function.function_name}: {problem}" for problem in closures[key]]
    assert not problems, "imports that the asset does not ship:\n" + "\n".join(sorted(problems))


def test_every_handler_imports_in_an_isolated_interpreter(
    functions: list[LambdaFunction], runtime_dirs: tuple[Path, Path], host_assets: dict[Path, Path]
) -> None:
    by_asset: dict[Path, list[LambdaFunction]] = defaultdict(list)
    for function in functions:
        by_asset[function.asset_dir].append(function)
    failures = []
    for asset, members in sorted(by_asset.items()):
        host = host_assets[asset]
        report = isolated_import(host, members, runtime_dirs)
        # Only the asset, the layer and the runtime, then the interpreter's own standard library.
        expected = isolated_sys_path(host, runtime_dirs)
        assert report.sys_path[: len(expected)] == expected
        rest = report.sys_path[len(expected) :]
        assert rest == report.stdlib and not any("site-packages" in entry for entry in rest), report.sys_path
        # The host builds live under the repository's .build/; the repository itself and its venv must not.
        repository = Path(__file__).parents[2]
        assert not any(
            Path(entry) == repository or Path(entry).is_relative_to(repository / ".venv")
            for entry in report.sys_path
        ), f"the repository is on the isolated sys.path: {report.sys_path}"
        assert all(Path(entry).is_relative_to(repository / ".build") for entry in expected), expected
        assert report.checked == len(members)
        failures += [failure.describe() for failure in report.failures]
    assert not failures, "handlers that fail to import from their own asset:\n" + "\n".join(sorted(failures))


# --- Probes: the checks bite ------------------------------------------------------------------

PROBE_MODULE = "tasks/fidelity_probe.py"


@pytest.fixture(scope="module")
def task_function(functions: list[LambdaFunction]) -> LambdaFunction:
    return next(f for f in functions if f.handler.startswith("tasks."))


def _probe_asset(tmp_path: Path, source: Path, body: str) -> Path:
    asset = tmp_path / "asset"
    shutil.copytree(source, asset, symlinks=True)
    (asset / PROBE_MODULE).write_text(body, encoding="utf-8")
    return asset


_FUNCTION_LEVEL_IMPORT = """
def handler(event, context):
    from infra.constants import ENVIRONMENTS

    return list(ENVIRONMENTS)
"""

_MODULE_LEVEL_IMPORT = """
import orchestrator.cli  # noqa: F401 - not shipped in the asset


def handler(event, context):
    return event
"""


def test_probe_function_level_import_outside_the_asset_is_reported(
    tmp_path: Path,
    task_function: LambdaFunction,
    runtime_dirs: tuple[Path, Path],
    host_assets: dict[Path, Path],
) -> None:
    asset = _probe_asset(tmp_path, host_assets[task_function.asset_dir], _FUNCTION_LEVEL_IMPORT)
    assert not (asset / "infra").exists()
    runtime_dir, layer_dir = runtime_dirs
    found = unresolved_imports(asset, "tasks.fidelity_probe", [asset, layer_dir, runtime_dir])
    assert [problem.describe() for problem in found] == [
        "infra.constants imported by tasks/fidelity_probe.py:3"
    ]
    # Importing alone cannot see it: the import runs only when the handler does (hence the static walk).
    report = isolated_import(
        asset, [replace(task_function, handler="tasks.fidelity_probe.handler")], runtime_dirs
    )
    assert report.failures == []


def test_probe_module_level_import_outside_the_asset_fails_like_lambda(
    tmp_path: Path,
    task_function: LambdaFunction,
    runtime_dirs: tuple[Path, Path],
    host_assets: dict[Path, Path],
) -> None:
    asset = _probe_asset(tmp_path, host_assets[task_function.asset_dir], _MODULE_LEVEL_IMPORT)
    shutil.rmtree(asset / "orchestrator", ignore_errors=True)
    runtime_dir, layer_dir = runtime_dirs
    found = unresolved_imports(asset, "tasks.fidelity_probe", [asset, layer_dir, runtime_dir])
    assert [problem.describe() for problem in found] == [
        "orchestrator.cli imported by tasks/fidelity_probe.py:2"
    ]
    probe = replace(task_function, function_name="probe-fn", handler="tasks.fidelity_probe.handler")
    report = isolated_import(asset, [probe], runtime_dirs)
    assert [failure.describe() for failure in report.failures] == [
        "probe-fn: Runtime.ImportModuleError: Unable to import module 'tasks.fidelity_probe': "
        "No module named 'orchestrator'"
    ]


def test_probe_missing_handler_attribute_is_handler_not_found(
    task_function: LambdaFunction, runtime_dirs: tuple[Path, Path], host_assets: dict[Path, Path]
) -> None:
    probe = replace(
        task_function, function_name="probe-fn", handler=f"{task_function.module}.no_such_handler"
    )
    report = isolated_import(host_assets[task_function.asset_dir], [probe], runtime_dirs)
    assert [failure.describe() for failure in report.failures] == [
        f"probe-fn: Runtime.HandlerNotFound: Handler 'no_such_handler' missing on module '{task_function.module}'"
    ]
