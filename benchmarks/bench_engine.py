"""Local engine overhead per state transition, with and without the JSONPath parse cache.

Two machines: a Pass/Choice loop (pure interpreter work) and a Lambda-task loop (in-process
handler that does nothing but count). Prints one JSON line of figures (milliseconds).
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
RUNS = 3

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


def _measure(engine: LocalEngine, name: str, definition: dict[str, Any]) -> dict[str, float]:
    arn = engine.create_state_machine(name, definition)
    per_transition = []
    transitions = 0
    for run in range(RUNS):
        started = time.perf_counter()
        result = engine.run(arn, {"limit": LOOPS}, name=f"{name}-{run}", timeout=600)
        elapsed = time.perf_counter() - started
        if result.status != "SUCCEEDED":
            raise SystemExit(f"{name} ended {result.status}: {result.error} {result.cause}")
        transitions = result.transitions
        per_transition.append(elapsed * 1000 / transitions)
    return {"ms_per_transition": round(statistics.median(per_transition), 4), "transitions": transitions}


def main() -> None:
    figures: dict[str, Any] = {"loops": LOOPS, "runs": RUNS}
    for cache in (True, False):
        label = "cached" if cache else "uncached"
        with LocalEngine(jsonpath_cache=cache) as engine:
            engine.register("count", _count)
            pass_choice = _measure(engine, f"pass-choice-{label}", PASS_CHOICE)
            lambda_loop = _measure(engine, f"lambda-loop-{label}", LAMBDA_LOOP)
        figures[f"pass_choice_ms_per_transition_{label}"] = pass_choice["ms_per_transition"]
        figures[f"lambda_task_ms_per_transition_{label}"] = lambda_loop["ms_per_transition"]
        figures["pass_choice_transitions"] = pass_choice["transitions"]
        figures["lambda_loop_transitions"] = lambda_loop["transitions"]
    figures["pass_choice_cache_speedup"] = round(
        figures["pass_choice_ms_per_transition_uncached"] / figures["pass_choice_ms_per_transition_cached"], 2
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
