"""Lambda-faithful execution: each function in its own worker process, from its own asset.

A worker runs `bootstrap.py` in an isolated interpreter (`python -I -S`) whose path holds only
the function's asset, its layers and a runtime directory, imports the template's handler at
start (the cold start) and answers invocations over a pipe; its stdout/stderr are the
function's log. Workers are reused like warm containers (`FunctionPool`), started from a zygote
that has pre-imported only the runtime/layer libraries, and killed on timeout.

Public API: `FunctionConfig`, `CodeLayout`, `LambdaWorkers`, `FunctionPool`, `Outcome`,
`host_site_packages`, `lambda_mode`.
"""

from __future__ import annotations

import os

from orchestrator.lambda_runtime.config import CodeLayout, FunctionConfig, host_site_packages
from orchestrator.lambda_runtime.pool import FunctionPool, LambdaWorkers, Outcome, WorkerInitError

MODE_VARIABLE = "ORCHESTRATOR_LAMBDA_MODE"


def lambda_mode(default: str = "isolated") -> str:
    """`isolated` (a worker process per function) or `in-process`, from ORCHESTRATOR_LAMBDA_MODE."""
    mode = os.environ.get(MODE_VARIABLE, default).strip().lower() or default
    if mode not in ("isolated", "in-process"):
        raise ValueError(f"{MODE_VARIABLE} must be 'isolated' or 'in-process', not {mode!r}")
    return mode


__all__ = [
    "MODE_VARIABLE",
    "CodeLayout",
    "FunctionConfig",
    "FunctionPool",
    "LambdaWorkers",
    "Outcome",
    "WorkerInitError",
    "host_site_packages",
    "lambda_mode",
]
