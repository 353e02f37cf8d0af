"""The CLI package's shape: one module per command group registered on the root, shared context in
one module, no import cycle, and the entry points the console script and `python -m` use."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import typer
from typer.main import get_command

import orchestrator.cli.context
from orchestrator.cli import main as cli_main
from orchestrator.cli.root import COMMAND_MODULES, app

PACKAGE = Path(orchestrator.cli.context.__file__).resolve().parent
ROOT = PACKAGE.parents[1]


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Modules of this project a file imports, at any depth of the file (module level or not);
    `from package import submodule` counts as importing the submodule."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {
                f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")
            }
            found.update(submodules or {node.module})
            if len(submodules) < len(node.names):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in {"orchestrator", "contracts", "tasks"}}


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    files = {_module_of(p): p for p in (ROOT / "orchestrator").rglob("*.py")}
    files.update({_module_of(p): p for p in (ROOT / "contracts").rglob("*.py")})
    graph = {}
    for module, path in files.items():
        graph[module] = {name for name in _imports(path) if name in files and name != module}
    return graph


def test_no_import_cycle_through_the_cli_or_the_request_building() -> None:
    graph = _graph()
    start = [m for m in graph if m.startswith("orchestrator.cli") or m == "orchestrator.requests"]

    def visit(module: str, trail: list[str]) -> None:
        for nxt in sorted(graph[module]):
            assert nxt not in trail, "import cycle: " + " -> ".join([*trail[trail.index(nxt) :], nxt])
            visit(nxt, [*trail, nxt])

    for module in start:
        visit(module, [module])


def test_nothing_outside_the_cli_imports_it() -> None:
    graph = _graph()
    importers = sorted(
        m
        for m, deps in graph.items()
        if not m.startswith("orchestrator.cli") and any(d.startswith("orchestrator.cli") for d in deps)
    )
    assert importers == []


def test_the_shared_context_depends_on_no_command_module() -> None:
    deps = _imports(PACKAGE / "context.py")
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
    probe.add_typer(extra, name="schedule")
    assert "schedule" in get_command(probe).commands  # type: ignore[attr-defined]


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
