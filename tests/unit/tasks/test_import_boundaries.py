"""What the Lambda assets import: the task and service code never pulls in the CLI or the CDK.

The task asset ships `tasks/`, `service/` and `contracts/` only (infra/bundling.py), so an import
of `orchestrator` (or `infra`, `aws_cdk`, the tests) would fail on AWS with
Runtime.ImportModuleError although it passes on a machine with the whole repository. Each
handler module is imported in a fresh interpreter, as Lambda's first invocation would.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ("tasks", "service", "contracts")
FORBIDDEN = ("orchestrator", "infra", "aws_cdk", "constructs", "tests", "moto")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def shipped_modules() -> list[str]:
    return sorted(module_name(path) for package in SHIPPED for path in (ROOT / package).rglob("*.py"))


def defines_a_handler(module: str) -> bool:
    path = ROOT / Path(*module.split("."))
    source = (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()
    return any(
        isinstance(node, ast.FunctionDef) and (node.name == "handler" or node.name.endswith("_handler"))
        for node in ast.parse(source).body
    )


HANDLER_MODULES = [
    m for m in shipped_modules() if m.startswith(("tasks.", "service.")) and defines_a_handler(m)
]


def imported_after(*modules: str) -> list[str]:
    """The forbidden top-level packages in sys.modules of a fresh interpreter after importing `modules`."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(FORBIDDEN)!r}))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_every_task_and_service_handler_module_is_found() -> None:
    # The list below must not silently shrink: these are the functions infra deploys.
    expected = {
        "tasks.validate_request",
        "tasks.release_record",
        "tasks.deploy_green",
        "tasks.warm_cache",
        "tasks.synthetic_checks",
        "tasks.approval",
        "tasks.set_weights",
        "tasks.check_alarms",
        "tasks.judge_canary",
        "tasks.finalize",
        "tasks.rollback",
        "tasks.alarm_rollback",
        "tasks.backup",
        "tasks.cost_check",
        "tasks.dr_drill",
        "tasks.event_path_drill",
        "service.handlers.authorizer",
        "service.handlers.connect",
        "service.handlers.disconnect",
        "service.handlers.messages",
        "service.handlers.fanout",
        "service.handlers.rotate_api_key",
    }
    assert expected <= set(HANDLER_MODULES), expected - set(HANDLER_MODULES)


@pytest.mark.parametrize("module", HANDLER_MODULES)
def test_a_handler_module_imports_neither_the_cli_nor_the_cdk(module: str) -> None:
    loaded = imported_after(module)
    assert loaded == [], f"importing {module} loads {loaded}"


def test_no_shipped_module_imports_the_cli_or_the_cdk() -> None:
    others = [m for m in shipped_modules() if m not in HANDLER_MODULES]
    assert len(others) > 20
    assert imported_after(*others) == []
