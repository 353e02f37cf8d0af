"""Local engine overhead per state transition: current engine, without its speed-only hooks, and
without the JSONPath parse cache.

Two machines: a Pass/Choice loop (pure interpreter work) and a Lambda-task loop (in-process
handler that does nothing but count). Each run is StartExecution to the returned result
(describe and full history, as `LocalEngine.run` gives them). Configurations are interleaved
run by run so load on a shared host hits them alike; figures are medians (milliseconds per
transition). `*_before` is the engine without `moto_hooks.FAST_PATHS` (in-thread tasks,
per-event history rendering, JSON deep copies), `*_cached` the engine as it ships and
`*_uncached` the same without the JSONPath cache. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

from orchestrator.engine import LocalEngine  # noqa: E402

LOOPS = 300
RUNS = 5
# label -> LocalEngine options
CONFIGS = {
    "before": {"fast_paths": False},
    "cached": {},
    "uncached": {"jsonpath_cache": False},
}

PASS_CHOICE = {
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Parameters": {"i": 0, "limit.$": "$.limit"}, "Next": "Step"},
        "Step": {
            "Type": "Pass",
            "Parameters": {"i.$": "States.MathAdd($.i, 1)", "limit.$": "$.limit"},
            "Next": "More?",
        },
        "More?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThanPath": "$.limit", "Next": "Step"}],
            "Default": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}

LAMBDA_LOOP = {
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Parameters": {"i": 0, "limit.$": "$.limit"}, "Next": "Count"},
        "Count": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "count", "Payload.$": "$"},
            "ResultSelector": {"i.$": "$.Payload.i", "limit.$": "$.Payload.limit"},
            "Next": "More?",
        },
        "More?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThanPath": "$.limit", "Next": "Count"}],
            "Default": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def _count(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"i": event["i"] + 1, "limit": event["limit"]}


def _run_once(options: dict[str, Any], name: str, definition: dict[str, Any]) -> tuple[float, int]:
    with LocalEngine(**options) as engine:
        engine.register("count", _count)
        arn = engine.create_state_machine(name, definition)
        started = time.perf_counter()
        result = engine.run(arn, {"limit": LOOPS}, name=f"{name}-run", timeout=600)
        elapsed = time.perf_counter() - started
    if result.status != "SUCCEEDED":
        raise SystemExit(f"{name} ended {result.status}: {result.error} {result.cause}")
    return elapsed * 1000 / result.transitions, result.transitions


def main() -> None:
    machines = {"pass_choice": PASS_CHOICE, "lambda_task": LAMBDA_LOOP}
    samples: dict[str, list[float]] = {f"{m}_{c}": [] for m in machines for c in CONFIGS}
    transitions: dict[str, int] = {}
    for run in range(RUNS):
        for machine, definition in machines.items():
            # Alternate the order each run so neither configuration always goes first.
            labels = list(CONFIGS) if run % 2 == 0 else list(reversed(CONFIGS))
            for label in labels:
                per_transition, count = _run_once(CONFIGS[label], f"{machine}-{label}-{run}", definition)
                samples[f"{machine}_{label}"].append(per_transition)
                transitions[machine] = count
    figures: dict[str, Any] = {"loops": LOOPS, "runs": RUNS}
    for machine in machines:
        for label in CONFIGS:
            figures[f"{machine}_ms_per_transition_{label}"] = round(
                statistics.median(samples[f"{machine}_{label}"]), 4
            )
        figures[f"{machine}_speedup_vs_before"] = round(
            figures[f"{machine}_ms_per_transition_before"] / figures[f"{machine}_ms_per_transition_cached"], 2
        )
        figures[f"{machine}_cache_speedup"] = round(
            figures[f"{machine}_ms_per_transition_uncached"] / figures[f"{machine}_ms_per_transition_cached"],
            2,
        )
    figures["pass_choice_transitions"] = transitions["pass_choice"]
    figures["lambda_loop_transitions"] = transitions["lambda_task"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
