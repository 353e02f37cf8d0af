"""Builders of the state a task receives, as the release state machine passes it."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from contracts.state import ReleaseState
from tasks.validate_request import ValidateInput, validate

Input = TypeVar("Input", bound=BaseModel)

EXECUTION_ARN = "arn:aws:states:eu-west-1:123456789012:execution:staging-release:rel-1"


def request(world: Any, **overrides: Any) -> dict[str, Any]:
    base = {
        "release_id": "rel-1",
        "version": "1.1.0",
        "artifact": world.artifact("green"),
        "requested_by": "alice",
        "strategy": {"steps": [{"percent": 10, "bake_seconds": 60}, {"percent": 100, "bake_seconds": 60}]},
    }
    base.update(overrides)
    return base


def validated_state(world: Any, settings: Any, **overrides: Any) -> ReleaseState:
    """The typed state ValidateRequest starts an execution with."""
    from tasks.validate_request import defaults_from_env

    started = validate(
        ValidateInput(
            request=request(world, **overrides),
            execution_arn=EXECUTION_ARN,
            execution_name="rel-1",
            started_at="2026-01-01T00:00:00.000Z",
        ),
        settings,
        defaults_from_env({}),
    )
    return ReleaseState.model_validate(started)


def task_input(model: type[Input], state: ReleaseState, **extra: Any) -> Input:
    """What a task's handler would parse from the state the machine passes it (plus Parameters)."""
    return model.model_validate({**state.json_dict(), **extra})


def hold_lock(world: Any, release_id: str = "rel-1", execution_arn: str = EXECUTION_ARN) -> None:
    import boto3

    boto3.resource("dynamodb", region_name="eu-west-1").Table("staging-release").put_item(
        Item={
            "pk": "lock#staging",
            "sk": "lock",
            "release_id": release_id,
            "execution_arn": execution_arn,
            "kind": "release",
        }
    )


class LambdaContext:
    """The parts of Lambda's context object the Powertools decorators read."""

    function_name = "release-task"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:release-task"
    aws_request_id = "req-unit"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000
