"""The moto hook points exist, install and uninstall cleanly, and fail loudly when moved."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from orchestrator.engine import moto_hooks
from orchestrator.engine.clock import VirtualClock
from orchestrator.engine.engine import LocalEngine
from orchestrator.engine.functions import FunctionRegistry
from orchestrator.engine.moto_hooks import HOOK_POINTS, HookPoint, HookPointMoved


@pytest.mark.parametrize("point", HOOK_POINTS, ids=lambda p: p.symbol)
def test_hook_point_exists_in_pinned_moto(point: HookPoint) -> None:
    # If this fails, moto moved the symbol: re-pin moto or move the hook (message names it).
    point.owner_and_name()


def test_check_hook_points_passes() -> None:
    moto_hooks.check_hook_points()


def test_moved_symbol_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

    monkeypatch.delattr(wait_function.WaitFunction, "_wait_interval")
    with pytest.raises(
        HookPointMoved, match=r"WaitFunction\._wait_interval is gone; needed for: Wait states"
    ):
        moto_hooks.check_hook_points()
    with pytest.raises(HookPointMoved, match="WaitFunction._wait_interval"):
        moto_hooks.install(VirtualClock(), FunctionRegistry())
    assert not moto_hooks.is_installed()


def test_missing_module_is_named() -> None:
    point = HookPoint("moto.stepfunctions.parser.no_such_module", "thing", "a test")
    with pytest.raises(HookPointMoved, match="module moto.stepfunctions.parser.no_such_module is gone"):
        point.owner_and_name()


def test_install_and_uninstall_restore_every_original() -> None:
    before = {p.symbol: vars(p.owner_and_name()[0])[p.owner_and_name()[1]] for p in HOOK_POINTS}
    clock, registry = VirtualClock(), FunctionRegistry()
    with moto_hooks.installed(clock, registry):
        assert moto_hooks.active_clock() is clock
        changed = {
            p.symbol
            for p in HOOK_POINTS
            if vars(p.owner_and_name()[0])[p.owner_and_name()[1]] is not before[p.symbol]
        }
        assert changed == set(before)
        with moto_hooks.installed(clock, registry):  # re-entrant with the same clock
            pass
        assert moto_hooks.is_installed()
        with pytest.raises(RuntimeError, match="already installed with another clock"):
            moto_hooks.install(VirtualClock(), registry)
    assert moto_hooks.active_clock() is None
    after = {p.symbol: vars(p.owner_and_name()[0])[p.owner_and_name()[1]] for p in HOOK_POINTS}
    assert after == before


def test_jsonpath_parsing_is_memoised() -> None:
    from moto.stepfunctions.parser.asl.utils import json_path

    with moto_hooks.installed(VirtualClock(), FunctionRegistry()):
        assert json_path.extract_json("$.a.b", {"a": {"b": 1}}) == 1
        assert json_path.parse("$.a.b") is json_path.parse("$.a.b")


def test_lambda_invoke_goes_to_registered_handler_without_docker() -> None:
    # A minimal machine through moto: both Resource forms reach the in-process handler.
    definition = {
        "StartAt": "Integration",
        "States": {
            "Integration": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "echo:live", "Payload.$": "$"},
                "ResultSelector": {"payload.$": "$.Payload", "version.$": "$.ExecutedVersion"},
                "Next": "Direct",
            },
            "Direct": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:echo",
                "End": True,
            },
        },
    }
    seen: list[dict[str, Any]] = []

    def echo(event: Any, context: Any) -> Any:
        seen.append(
            {"arn": context.invoked_function_arn, "remaining": context.get_remaining_time_in_millis()}
        )
        return event

    with LocalEngine() as engine:
        engine.register("echo", echo, timeout_seconds=30)
        arn = engine.create_state_machine("hooks", definition)
        result = engine.run(arn, {"x": 1}, name="hooks-1")
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == {"payload": {"x": 1}, "version": "live"}
    assert [s["arn"] for s in seen] == [
        "arn:aws:lambda:eu-west-1:123456789012:function:echo:live",
        "arn:aws:lambda:eu-west-1:123456789012:function:echo",
    ]
    assert all(0 < s["remaining"] <= 30_000 for s in seen)
    assert not moto_hooks.is_installed()
    # Outside the engine moto is untouched: no handler routing remains.
    assert boto3.session.Session().region_name in (None, "eu-west-1")
    assert json.loads(json.dumps(result.describe, default=str))["status"] == "SUCCEEDED"


def test_fast_paths_can_be_left_out_for_benchmarks() -> None:
    before = {p.symbol: vars(p.owner_and_name()[0])[p.owner_and_name()[1]] for p in HOOK_POINTS}
    assert moto_hooks.FAST_PATHS <= set(before)
    with moto_hooks.installed(VirtualClock(), FunctionRegistry(), fast_paths=False):
        untouched = {
            p.symbol
            for p in HOOK_POINTS
            if vars(p.owner_and_name()[0])[p.owner_and_name()[1]] is before[p.symbol]
        }
    assert untouched == moto_hooks.FAST_PATHS


def test_task_timeout_is_judged_on_the_virtual_clock() -> None:
    # A task whose call returns after TimeoutSeconds of virtual time fails with States.Timeout
    # (Catch sees it); one that returns in time succeeds. (With moto's thread per task this
    # was a race: the waiting thread often read the clock only after the handler had moved it.)
    definition = {
        "StartAt": "Quick",
        "States": {
            "Quick": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "slow", "Payload": {"seconds": 4}},
                "TimeoutSeconds": 5,
                "ResultSelector": {"slept.$": "$.Payload.slept"},
                "ResultPath": "$.quick",
                "Next": "Slow",
            },
            "Slow": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:slow",
                "Parameters": {"seconds": 6},
                "TimeoutSeconds": 5,
                "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "TimedOut"}],
                "End": True,
            },
            "TimedOut": {"Type": "Pass", "End": True},
        },
    }

    def slow(event: Any, context: Any) -> Any:
        context.clock.sleep(event["seconds"])
        return {"slept": event["seconds"]}

    with LocalEngine() as engine:
        engine.register("slow", slow)
        result = engine.run(engine.create_state_machine("timeouts", definition), {}, name="timeouts-1")
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["quick"] == {"slept": 4}
    assert result.output["error"]["Error"] == "States.Timeout"
    assert result.states_entered() == ["Quick", "Slow", "TimedOut"]
    assert len(result.events("TaskTimedOut", "LambdaFunctionTimedOut")) == 1
