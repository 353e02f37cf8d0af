"""The event-path drill state machine, as synthesized, through the local engine against moto and
a real Redis: success, a failure mid-drill, a drill blocked by a release. On every path the
preview mapping ends enabled and the lock is released."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import boto3
import pytest
import redis

from orchestrator.engine import ExecutionResult, LocalEngine, Sandbox, import_handler, lambda_functions
from orchestrator.engine.intrinsics import ResourceMap
from tests.support.event_path_world import EventPathWorld, build_event_path_world
from tests.support.ops_world import REGION, TABLE, OpsWorld, build_ops_world
from tests.support.release_stack import node_binary

SANDBOX = Sandbox(stack_name="EventPathDrillTest", region=REGION)
FUNCTION = "staging-ops-event-path-drill"


def synth_event_path_template(environment: str = "staging") -> dict[str, Any]:
    os.environ.setdefault("JSII_NODE", node_binary())
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    import aws_cdk as cdk
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk.assertions import Template

    from state_machines.event_path_drill import EventPathDrillProps, event_path_drill_definition

    app = cdk.App()
    stack = cdk.Stack(app, SANDBOX.stack_name, env=cdk.Environment(account="123456789012", region=REGION))
    table = dynamodb.Table(
        stack,
        "Releases",
        table_name=TABLE,
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
    )
    fn = lambda_.Function(
        stack,
        "Drill",
        function_name=FUNCTION,
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="tasks.event_path_drill.handler",
        code=lambda_.Code.from_inline("# bundled by infra"),
        timeout=cdk.Duration.seconds(300),
    )
    definition = event_path_drill_definition(
        stack, EventPathDrillProps(environment=environment, table=table, drill_function=fn)
    )
    sfn.StateMachine(
        stack,
        "EventPathDrill",
        state_machine_name=f"{environment}-event-path-drill",
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        tracing_enabled=True,
    )
    return Template.from_stack(stack).to_json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return synth_event_path_template()


@dataclass
class Harness:
    engine: LocalEngine
    ops: OpsWorld
    path: EventPathWorld
    arn: str
    steps: list[str]
    fail_at: dict[str, Exception]

    def run(self, name: str = "ep-1", **request: Any) -> ExecutionResult:
        return self.engine.run(
            self.arn, {"requested_by": "oncall", "events": 4, **request}, name=name, timeout=60
        )

    def lock(self) -> dict[str, Any] | None:
        item = (
            boto3.resource("dynamodb", region_name=REGION)
            .Table(TABLE)
            .get_item(Key={"pk": "lock#staging", "sk": "lock"})
            .get("Item")
        )
        return dict(item) if item else None

    def record(self, drill_id: str = "ep-1") -> dict[str, Any]:
        return dict(
            boto3.resource("dynamodb", region_name=REGION)
            .Table(TABLE)
            .get_item(Key={"pk": f"drill#{drill_id}", "sk": "record"})["Item"]
        )

    def assert_restored(self) -> None:
        """The invariant: green's fan-out consumes its queue again and the lock is free."""
        assert self.path.mapping_state() == "Enabled"
        assert self.lock() is None, self.lock()


@pytest.fixture
def drill(template: dict[str, Any], redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    from tasks import event_path_drill
    from tasks.common import set_clock

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    # moto's queue is one server: short polling sees every message; an empty long poll only sleeps.
    monkeypatch.setattr(event_path_drill, "RECEIVE_WAIT_SECONDS", 0)
    with LocalEngine(sandbox=SANDBOX) as engine:
        ops = build_ops_world()
        path = build_event_path_world(redis_url, monkeypatch)
        for name, value in {**ops.env(), **path.env()}.items():
            monkeypatch.setenv(name, value)
        harness = Harness(engine=engine, ops=ops, path=path, arn="", steps=[], fail_at={})
        real = import_handler("tasks.event_path_drill.handler")

        def run(event: Any, context: Any) -> Any:
            harness.steps.append(event["step"])
            if event["step"] in harness.fail_at:
                raise harness.fail_at[event["step"]]
            return real(event, context)

        handlers = {
            spec.name: run for spec in lambda_functions(template, ResourceMap(template, SANDBOX)).values()
        }
        harness.arn = next(iter(engine.load_template(template, handlers=handlers).values()))
        set_clock(lambda: engine.clock.now().astimezone(UTC))
        yield harness
        set_clock(None)


def test_events_are_dead_lettered_redriven_and_delivered(drill: Harness, redis_url: str) -> None:
    result = drill.run()
    assert result.succeeded, (result.error, result.cause)
    states = result.states_entered()
    assert states[:4] == ["PrepareEventPathDrill", "AcquireEventPathLock", "DisableMapping", "WaitForMapping"]
    assert states.index("PutMarkedEvents") < states.index("ForceFailures") < states.index("EnableMapping")
    assert states[-4:] == [
        "RecordEventPathDrill",
        "ReleaseEventPathLock",
        "DidEventPathDrillPass",
        "EventPathDrillSucceeded",
    ]
    assert "RestoreEventPath" not in states
    record = drill.record()
    assert record["outcome"] == "SUCCEEDED" and record["dead_lettered"] == 4 and record["delivered"] == 4
    assert sorted(drill.path.consumer.delivered) == [f"drill-ep-1-{i}" for i in range(4)]
    assert (
        redis.Redis.from_url(redis_url).exists(
            *[f"cache:v3:snap:synthetic:drill-ep-1-{i:02d}" for i in range(4)]
        )
        == 4
    )
    assert drill.ops.metric("EventPathDrillSucceeded") == [1.0]
    [notice] = [n for n in drill.ops.notices() if n["kind"] == "event-path drill"]
    assert notice["summary"].startswith("SUCCEEDED: 4 events dead-lettered")
    assert drill.path.depth(drill.path.queue_url) == 0 and drill.path.depth(drill.path.dlq_url) == 0
    assert result.transitions < 60
    drill.assert_restored()


def test_failure_mid_drill_re_enables_the_mapping_and_releases_the_lock(drill: Harness) -> None:
    # The events are in the DLQ and the mapping is still paused when resuming it fails: the
    # failure path must resume it and take the drill's events out of the DLQ.
    drill.fail_at["enable_mapping"] = RuntimeError("UpdateEventSourceMapping: AccessDeniedException")
    result = drill.run()
    assert result.status == "FAILED" and result.error == "RuntimeError"
    assert "AccessDeniedException" in result.cause
    states = result.states_entered()
    assert states[-5:] == [
        "RestoreEventPath",
        "RecordEventPathDrill",
        "ReleaseEventPathLock",
        "DidEventPathDrillPass",
        "EventPathDrillFailed",
    ]
    assert drill.record()["outcome"] == "FAILED"
    assert drill.ops.metric("EventPathDrillFailed") == [1.0]
    assert drill.path.depth(drill.path.dlq_url) == 0  # the drill's dead-lettered events were deleted
    drill.assert_restored()


def test_redrive_failure_is_reported_and_the_path_restored(drill: Harness) -> None:
    drill.path.moves.fail_with = "AccessDenied on the destination queue"
    result = drill.run()
    assert result.error == "RedriveFailed" and "AccessDenied on the destination queue" in result.cause
    assert "RestoreEventPath" in result.states_entered()
    drill.assert_restored()


def test_drill_is_refused_while_a_release_holds_the_lock(drill: Harness) -> None:
    boto3.resource("dynamodb", region_name=REGION).Table(TABLE).put_item(
        Item={
            "pk": "lock#staging",
            "sk": "lock",
            "release_id": "rel-9",
            "kind": "release",
            "expires_at": "2999-01-01T00:00:00.000Z",
        }
    )
    result = drill.run()
    assert result.error == "ReleaseInProgress"
    assert "disable_mapping" not in drill.steps
    assert drill.path.mapping_state() == "Enabled" and drill.lock()["release_id"] == "rel-9"
