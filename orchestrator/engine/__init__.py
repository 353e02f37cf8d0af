"""The local engine: synthesized state machines run by moto's ASL interpreter, in-process.

Public API: `LocalEngine`, `Execution`, `ExecutionResult`, `VirtualClock`, `FunctionRegistry`,
`LambdaContext`, `invoke_error`, and the template helpers `ResourceMap`, `Sandbox`,
`state_machines`, `lambda_functions`, `resolve`. All moto internals live in `moto_hooks`.
"""

from orchestrator.engine.clock import VirtualClock
from orchestrator.engine.engine import (
    Execution,
    ExecutionResult,
    ExecutionTimeout,
    LocalEngine,
    count_transitions,
    import_handler,
)
from orchestrator.engine.functions import FunctionRegistry, LambdaContext, invoke_error
from orchestrator.engine.intrinsics import (
    FunctionSpec,
    ResourceMap,
    Sandbox,
    StateMachineSpec,
    UnresolvableIntrinsic,
    lambda_functions,
    resolve,
    state_machines,
)
from orchestrator.engine.moto_hooks import HookPointMoved, active_clock, check_hook_points

__all__ = [
    "Execution",
    "ExecutionResult",
    "ExecutionTimeout",
    "FunctionRegistry",
    "FunctionSpec",
    "HookPointMoved",
    "LambdaContext",
    "LocalEngine",
    "ResourceMap",
    "Sandbox",
    "StateMachineSpec",
    "UnresolvableIntrinsic",
    "VirtualClock",
    "active_clock",
    "check_hook_points",
    "count_transitions",
    "import_handler",
    "invoke_error",
    "lambda_functions",
    "resolve",
    "state_machines",
]
