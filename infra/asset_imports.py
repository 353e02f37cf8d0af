"""Does a Lambda asset import only what it ships? Two checks, both without `aws_cdk`.

- `unresolved_imports`: static. Walks the handler module's imports with `ast`, function-level
  imports included (they run only on the path that calls them, which is why an import check
  cannot see them), recursively through the asset's own packages. Every imported module must
  resolve in the asset directory, the layer dir, the runtime dir or the standard library.
- `isolated_import`: dynamic. Imports each handler in `python -I -S` with sys.path = [asset,
  layer, runtime] + stdlib and the function's environment, as the Lambda runtime would, and
  reports failures in the runtime's words (`Runtime.ImportModuleError`, `Runtime.HandlerNotFound`).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra import bundling
from infra.lambda_assets import ISOLATED_FLAGS, LambdaFunction, isolated_sys_path

PROBE_SCRIPT = Path(__file__).resolve().with_name("lambda_import_probe.py")
_STDLIB = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names)
_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


@dataclass(frozen=True, order=True)
class UnresolvedImport:
    module: str
    file: str  # relative to the asset directory
    line: int

    def describe(self) -> str:
        return f"{self.module} imported by {self.file}:{self.line}"


@dataclass(frozen=True)
class _Import:
    module: str  # absolute dotted name
    names: tuple[str, ...]  # `from module import names` (may be submodules); () for `import module`
    line: int


def own_packages(asset_dir: Path) -> tuple[str, ...]:
    """The project packages an asset ships (from its recipe)."""
    return bundling.read_recipe(asset_dir).packages


def _find(module: str, roots: Sequence[Path]) -> Path | None:
    """Where `module` would be found on sys.path = roots (a file, or a namespace directory)."""
    parts = module.split(".")
    namespace: Path | None = None
    for root in roots:
        base = root.joinpath(*parts)
        if (base / "__init__.py").is_file():
            return base / "__init__.py"
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py")
        if base.parent.is_dir():
            extensions = [p for p in base.parent.glob(f"{parts[-1]}.*") if p.suffix in {".so", ".pyd"}]
            if extensions:
                return extensions[0]
        if namespace is None and base.is_dir():
            namespace = base
    return namespace


def _resolves(module: str, roots: Sequence[Path]) -> bool:
    if module.split(".")[0] in _STDLIB:
        return True
    return _find(module, roots) is not None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _guards_import_error(handlers: list[ast.ExceptHandler]) -> bool:
    for handler in handlers:
        caught = handler.type
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught] if caught else []
        if caught is None or any(isinstance(name, ast.Name) and name.id in _IMPORT_ERRORS for name in names):
            return True
    return False


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[_Import]:
    """Imports that can run: all levels (functions included), except `if TYPE_CHECKING:` blocks
    and `try:` bodies that handle ImportError (optional imports)."""
    package = module if is_package else module.rpartition(".")[0]

    def absolute(name: str | None, level: int) -> str:
        if level == 0:
            return name or ""
        base = package.split(".")
        base = base[: len(base) - (level - 1)] if level > 1 else base
        return ".".join([*base, name] if name else base)

    def visit(node: ast.AST) -> Iterator[_Import]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                yield from visit(statement)
            return
        if isinstance(node, ast.Try) and _guards_import_error(node.handlers):
            guarded: list[ast.AST] = [*node.handlers, *node.orelse, *node.finalbody]
            for part in guarded:
                yield from visit(part)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _Import(alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names if alias.name != "*")
            yield _Import(absolute(node.module, node.level), names, node.lineno)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if called in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                name = node.args[0].value
                if not name.startswith("."):
                    yield _Import(name, (), node.lineno)
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    yield from visit(tree)


def unresolved_imports(
    asset_dir: Path, module: str, search_path: Sequence[Path], packages: Iterable[str] | None = None
) -> list[UnresolvedImport]:
    """Imports reachable from `module` that resolve nowhere on `search_path` nor in the stdlib.

    `search_path` is the function's sys.path without the stdlib: [asset_dir, layer, runtime].
    The walk follows every module of the asset's own `packages` (default: its recipe's); other
    packages only need to be found.
    """
    asset_dir = Path(asset_dir)
    roots = [Path(p) for p in search_path]
    own = set(packages if packages is not None else own_packages(asset_dir))
    problems: set[UnresolvedImport] = set()
    seen: set[str] = set()
    pending = [module]

    def follow(name: str) -> None:
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py too.
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            prefix = ".".join(parts[:end])
            if prefix.split(".")[0] in own and prefix not in seen:
                pending.append(prefix)

    follow(module)
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        path = _find(current, [asset_dir])
        if path is None or path.suffix != ".py":
            continue  # unresolvable handlers are the isolated import's report; namespaces have no code
        relative = path.relative_to(asset_dir).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
        for imported in _imports(tree, current, path.name == "__init__.py"):
            if not _resolves(imported.module, roots):
                problems.add(UnresolvedImport(imported.module, relative, imported.line))
                continue
            follow(imported.module)
            for name in imported.names:
                candidate = f"{imported.module}.{name}"
                located = _find(imported.module, roots)
                if located is not None and (located.name == "__init__.py" or located.is_dir()):
                    if _find(candidate, roots) is not None:  # a submodule, not an attribute
                        follow(candidate)
    return sorted(problems)


# --- Isolated import ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportFailure:
    function: str
    handler: str
    error_type: str
    message: str

    def describe(self) -> str:
        return f"{self.function}: {self.error_type}: {self.message}"


@dataclass
class IsolatedImportReport:
    asset_dir: Path
    sys_path: list[str]
    stdlib: list[str]
    checked: int
    failures: list[ImportFailure] = field(default_factory=list)


def lambda_environment(function: LambdaFunction, asset_dir: Path, runtime_dir: Path) -> dict[str, str]:
    """What the runtime sets, then the template's variables (placeholders for intrinsics); no credentials."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(asset_dir),
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "AWS_REGION": function.region or "us-east-1",
        "AWS_DEFAULT_REGION": function.region or "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        # Keep any file or instance-metadata credentials of this machine out of reach.
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        **function.placeholder_environment(),
    }


def isolated_import(
    asset_dir: Path,
    functions: Sequence[LambdaFunction],
    runtime_dirs: tuple[Path, Path],
    *,
    python: str = sys.executable,
    timeout: float = 300,
) -> IsolatedImportReport:
    """Import every function's handler from `asset_dir` (a host-platform bundle) in one isolated
    interpreter: sys.path = [asset_dir, layer, runtime] + stdlib, each with its own environment."""
    asset_dir = Path(asset_dir)
    runtime_dir, _ = runtime_dirs
    with tempfile.TemporaryDirectory(prefix="isolated-import-") as scratch:
        output = Path(scratch) / "result.json"
        request = {
            "path": isolated_sys_path(asset_dir, runtime_dirs),
            "purge": list(own_packages(asset_dir)),
            "output": str(output),
            "functions": [
                {
                    "name": function.function_name,
                    "handler": function.handler,
                    "environment": lambda_environment(function, asset_dir, runtime_dir),
                }
                for function in functions
            ],
        }
        completed = subprocess.run(  # noqa: S603 - fixed argv
            [python, *ISOLATED_FLAGS, str(PROBE_SCRIPT)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": "/usr/bin:/bin"},
            cwd=scratch,
            check=False,
        )
        if completed.returncode != 0 or not output.exists():
            raise RuntimeError(
                f"isolated import of {asset_dir} failed to run: {completed.stderr.strip()[-2000:]}"
            )
        result = json.loads(output.read_text(encoding="utf-8"))
    failures = [
        ImportFailure(entry["name"], entry["handler"], entry["error_type"], entry["message"])
        for entry in result["results"]
        if not entry["ok"]
    ]
    return IsolatedImportReport(
        asset_dir, result["sys_path"], result["stdlib"], len(result["results"]), failures
    )
