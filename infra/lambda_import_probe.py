"""Import Lambda handlers the way the Python runtime does, inside an isolated interpreter.

Run as a script, never imported by the project: `python -I -S infra/lambda_import_probe.py`
(the standard library only; `-I` keeps the script's directory off sys.path). The request comes
as JSON on stdin:

    {"path": [asset, layer, runtime], "purge": ["tasks", ...], "output": "/tmp/result.json",
     "functions": [{"name": ..., "handler": "pkg.module.attr", "environment": {...}}, ...]}

sys.path becomes `path` followed by the interpreter's standard library, nothing else. Each
function is imported with its own environment (its package modules are forgotten in between),
and the result goes to `output` (a handler may print on stdout while it is imported):

    {"sys_path": [...], "results": [{"name", "handler", "ok", "error_type", "message"}]}

`load_handler` follows awslambdaric's bootstrap, so failures read as Lambda reports them:
`Runtime.ImportModuleError: Unable to import module 'm': No module named 'x'`,
`Runtime.HandlerNotFound: Handler 'f' missing on module 'm'`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any


class LambdaFault(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


def load_handler(handler: str) -> Any:
    """The handler's callable, or LambdaFault with the runtime's error type and message."""
    try:
        module_name, attribute = handler.rsplit(".", 1)
    except ValueError as exc:
        raise LambdaFault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}") from None
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise LambdaFault(
            "Runtime.BuiltInModuleConflict", f"Cannot use built-in module {module_name} as a handler module"
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise LambdaFault(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from None
    except SyntaxError as exc:
        raise LambdaFault(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the runtime reports any init error by its class name
        raise LambdaFault(type(exc).__name__, str(exc)) from None
    try:
        function = getattr(module, attribute)
    except AttributeError:
        raise LambdaFault(
            "Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'"
        ) from None
    if not callable(function):
        raise LambdaFault(
            "Runtime.HandlerNotFound", f"Handler '{attribute}' on module '{module_name}' is not callable"
        )
    return function


def _forget(packages: list[str]) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in packages:
            del sys.modules[name]
    importlib.invalidate_caches()


def main() -> int:
    request = json.load(sys.stdin)
    stdlib = list(sys.path)  # under -I -S: the standard library only
    sys.path[:] = [*request["path"], *stdlib]
    isolated_path = list(sys.path)
    results = []
    for function in request["functions"]:
        os.environ.clear()
        os.environ.update(function["environment"])
        _forget(request.get("purge", []))
        entry: dict[str, Any] = {"name": function["name"], "handler": function["handler"], "ok": True}
        try:
            load_handler(function["handler"])
        except LambdaFault as fault:
            entry.update(ok=False, error_type=fault.error_type, message=fault.message)
        results.append(entry)
    with open(request["output"], "w", encoding="utf-8") as output:
        json.dump({"sys_path": isolated_path, "stdlib": stdlib, "results": results}, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
