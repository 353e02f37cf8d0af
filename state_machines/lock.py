"""The per-environment lock that releases and drills share: one item, conditional writes.

`lock#<env>` / `lock` in the release table. Acquire is a conditional put (absent, or expired:
an abandoned lock, whose execution stopped without clean-up, expires instead of blocking
forever); release is a conditional delete by owner (already gone, e.g. after an alarm
rollback, is fine). Releases, DR drills and event-path drills all use these two states, so one
of them at a time holds an environment.
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from state_machines.policies import FAILURE_PATH, TRANSIENT_DYNAMODB_ERRORS, retry_transient

LOCK_CONFLICT = "DynamoDB.ConditionalCheckFailedException"
ENTERED_TIME = "$$.State.EnteredTime"


def lock_key(environment: str) -> dict[str, tasks.DynamoAttributeValue]:
    return {
        "pk": tasks.DynamoAttributeValue.from_string(f"lock#{environment}"),
        "sk": tasks.DynamoAttributeValue.from_string("lock"),
    }


def _text(value: str) -> tasks.DynamoAttributeValue:
    """A JSONPath (`$...`) is read from the state; anything else is a constant."""
    return tasks.DynamoAttributeValue.from_string(
        sfn.JsonPath.string_at(value) if value.startswith("$") else value
    )


def acquire_lock(
    scope: Construct,
    name: str,
    *,
    table: dynamodb.ITable,
    environment: str,
    kind: str,
    owner_path: str,
    version: str,
    requested_by_path: str,
    expires_at_path: str,
    comment: str,
    in_progress: tuple[str, str],
    unavailable: str,
) -> tasks.DynamoPutItem:
    """The conditional put; a held lock ends in the `in_progress` Fail (name, cause) with
    error `ReleaseInProgress`, any other failure after retries in the `unavailable` Fail."""
    state = tasks.DynamoPutItem(
        scope,
        name,
        state_name=name,
        comment=comment,
        table=table,
        item={
            **lock_key(environment),
            "kind": _text(kind),
            "release_id": _text(owner_path),
            "execution_arn": tasks.DynamoAttributeValue.from_string(sfn.JsonPath.execution_id),
            "version": _text(version),
            "requested_by": _text(requested_by_path),
            "acquired_at": _text(ENTERED_TIME),
            "expires_at": _text(expires_at_path),
        },
        condition_expression="attribute_not_exists(pk) OR expires_at < :now",
        expression_attribute_values={":now": _text(ENTERED_TIME)},
        result_path=sfn.JsonPath.DISCARD,
    )
    retry_transient(state, attempts=4, retry_timeouts=False, errors=TRANSIENT_DYNAMODB_ERRORS)
    held_name, held_cause = in_progress
    state.add_catch(
        sfn.Fail(scope, held_name, state_name=held_name, error="ReleaseInProgress", cause=held_cause),
        errors=[LOCK_CONFLICT],
        result_path=FAILURE_PATH,
    )
    state.add_catch(
        sfn.Fail(
            scope,
            unavailable,
            state_name=unavailable,
            error_path="$.failure.Error",
            cause_path="$.failure.Cause",
        ),
        errors=["States.ALL"],
        result_path=FAILURE_PATH,
    )
    return state


def release_lock(
    scope: Construct,
    name: str,
    *,
    table: dynamodb.ITable,
    environment: str,
    owner_path: str,
    comment: str,
    then: sfn.IChainable,
    on_error: sfn.IChainable,
) -> tasks.DynamoDeleteItem:
    """Delete the lock if this execution holds it, then continue with `then`."""
    state = tasks.DynamoDeleteItem(
        scope,
        name,
        state_name=name,
        comment=comment,
        table=table,
        key=lock_key(environment),
        condition_expression="release_id = :rid",
        expression_attribute_values={":rid": _text(owner_path)},
        result_path=sfn.JsonPath.DISCARD,
    )
    retry_transient(state, attempts=6, retry_timeouts=False, errors=TRANSIENT_DYNAMODB_ERRORS)
    state.add_catch(then, errors=[LOCK_CONFLICT], result_path="$.lock_release")
    state.add_catch(on_error, errors=["States.ALL"], result_path="$.lock_release")
    state.next(then)
    return state
