"""GetExecutionHistory rendered per event equals what moto's own serializer sends."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from orchestrator.engine.engine import LocalEngine
from orchestrator.engine.history_wire import HistoryBody, Unsupported, compile_shape

_FN = "arn:aws:lambda:eu-west-1:123456789012:function:work"

# Every kind of event the release machines produce: Pass/Choice/Wait, Lambda tasks (both
# Resource forms) succeeding, failing, retried and caught, Map and Parallel, Fail.
_DEFINITION: dict[str, Any] = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Result": {"items": [1, 2]}, "ResultPath": "$.data", "Next": "Bake"},
        "Bake": {"Type": "Wait", "Seconds": 3600, "Next": "Work"},
        "Work": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "work", "Payload.$": "$"},
            "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2}],
            "ResultPath": "$.work",
            "Next": "Fan",
        },
        "Fan": {
            "Type": "Map",
            "ItemsPath": "$.data.items",
            "Iterator": {
                "StartAt": "Item",
                "States": {"Item": {"Type": "Task", "Resource": _FN, "End": True}},
            },
            "ResultPath": "$.fan",
            "Next": "Both",
        },
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
                {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": True}}},
            ],
            "ResultPath": "$.both",
            "Next": "Broken",
        },
        "Broken": {
            "Type": "Task",
            "Resource": _FN,
            "Parameters": {"fail": True},
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Decide"}],
            "Next": "Decide",
        },
        "Decide": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.error", "IsPresent": True, "Next": "Failed"}],
            "Default": "Failed",
        },
        "Failed": {"Type": "Fail", "Error": "Broken", "Cause": "the broken step failed"},
    },
}


def _moto_body(execution_arn: str) -> Any:
    from moto.core.responses import ActionContext, ActionResult
    from moto.core.serialize import get_serializer_class
    from moto.core.utils import get_service_model
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    backend = stepfunctions_parser_backends["123456789012"]["eu-west-1"]
    execution = backend.describe_execution(execution_arn)
    manager = execution.exec_worker.env.event_manager
    events = copy.deepcopy(manager._history_event_list)
    service = get_service_model("stepfunctions")
    operation = service.operation_model("GetExecutionHistory")
    context = ActionContext(service, operation, get_serializer_class("stepfunctions", "json"), None)
    status, _headers, body = ActionResult({"events": events}).execute_result(context)
    assert status == 200
    return events, operation.output_shape, json.loads(body)


def test_rendered_history_equals_moto_serializer() -> None:
    calls = {"n": 0}

    def work(event: Any, context: Any) -> Any:
        if isinstance(event, dict) and event.get("fail"):
            raise RuntimeError("boom")
        calls["n"] += 1
        if calls["n"] == 1:
            raise type("Flaky", (Exception,), {})("transient")
        return {"ok": True, "at": 1.5, "nested": {"list": [None, "x"]}}

    with LocalEngine() as engine:
        engine.register("work", work)
        arn = engine.create_state_machine("wire", _DEFINITION)
        result = engine.run(arn, {"release": "1.2.3"}, name="wire-1")
        assert result.status == "FAILED", result.cause
        events, shape, expected = _moto_body(result.execution_arn)
        types = {e["type"] for e in events}
        assert {"MapStateStarted", "ParallelStateStarted", "LambdaFunctionFailed", "TaskFailed"} <= types
        # Rendered in two reads (a prefix first), as a polling reader sees a growing history.
        body = HistoryBody(shape)
        json.loads(body.render(events[:7]))
        assert json.loads(body.render(events)) == expected
        # And what a client reads through boto3 is the same history.
        assert [e["id"] for e in result.history] == [e["id"] for e in expected["events"]]


def test_non_dict_structure_is_left_to_moto() -> None:
    from moto.core.utils import get_service_model

    shape = get_service_model("stepfunctions").operation_model("GetExecutionHistory").output_shape
    encode = compile_shape(shape.members["events"].member)
    with pytest.raises(Unsupported, match="not a dict"):
        encode(object())
