"""The CLI package's shape: one module per command group registered on the root, shared context in
one module, nothing else importing the CLI, and the entry points the console script and `python -m`
use. (No import cycle anywhere: tests/unit/ci/test_import_graph.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from typer.main import get_command

import orchestrator.cli.context
from orchestrator.cli import main as cli_main
from orchestrator.cli.root import COMMAND_MODULES, app
from tests.support.import_graph import import_graph as _graph

PACKAGE = Path(orchestrator.cli.context.__file__).resolve().parent
ROOT = PACKAGE.parents[1]


def test_nothing_outside_the_cli_imports_it() -> None:
    graph = _graph()
    importers = sorted(
        m
        for m, deps in graph.items()
        if not m.startswith("orchestrator.cli") and any(d.startswith("orchestrator.cli") for d in deps)
    )
    assert importers == []


def test_the_shared_context_depends_on_no_command_module() -> None:
    deps = _graph()["orchestrator.cli.context"]
    assert not [d for d in deps if d.startswith("orchestrator.cli")]


def test_every_command_module_is_registered_once_through_its_register() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__", "root", "context"}
    assert {m.__name__.rsplit(".", 1)[-1] for m in COMMAND_MODULES} == modules
    root = get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    assert set(root.commands) == {
        "release",
        "sandbox",
        "synth",
        "render",
        "demo",
        "check",
        "cost",
        "ops",
        "drill",
        "dr-drill",
        "schedule",
    }


def test_a_new_group_is_one_register_call() -> None:
    extra = typer.Typer(no_args_is_help=True)

    @extra.command("list")
    def list_them() -> None:
        print("listed")

    probe = typer.Typer()
    probe.callback()(lambda: None)
    for module in COMMAND_MODULES:
        module.register(probe)
    probe.add_typer(extra, name="extra")
    assert "extra" in get_command(probe).commands  # type: ignore[attr-defined]


def test_python_dash_m_and_the_console_script_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "release" in done.stdout and "check" in done.stdout
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["orchestrator"] == "orchestrator.cli:main"
    assert cli_main is __import__("orchestrator.cli", fromlist=["main"]).main
