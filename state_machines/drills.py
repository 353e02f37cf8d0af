"""What both drills share: their Lambda steps, their opening (validate, take the lock) and their tail
(release the lock, then one outcome).

    Prepare<Drill> -> Acquire<Drill>Lock -> ...the drill... -> Record -> Release<Drill>Lock -> outcome

The DR drill (`dr_drill.py`) and the event-path drill (`event_path_drill.py`) differ only in their
middle and in which failures the outcome distinguishes; their state names stay their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from state_machines.lock import acquire_lock, release_lock
from state_machines.policies import FAILURE_PATH, retry_transient


def drill_step(
    scope: Construct,
    name: str,
    fn: lambda_.IFunction,
    step: str,
    *,
    result_path: str,
    fields: dict[str, str],
    comment: str,
) -> tasks.LambdaInvoke:
    """One step of a drill function: `{"step": step, **fields read from the state}`, transient retries."""
    payload = {"step": step, **{key: sfn.JsonPath.object_at(path) for key, path in fields.items()}}
    state = tasks.LambdaInvoke(
        scope,
        name,
        state_name=name,
        comment=comment,
        lambda_function=fn,
        payload=sfn.TaskInput.from_object(payload),
        payload_response_only=True,
        retry_on_service_exceptions=False,
        result_path=result_path,
    )
    retry_transient(state)
    return state


@dataclass(frozen=True)
class DrillOpening:
    """The names and words of a drill's first two states and of the Fail states they lead to."""

    prepare: str
    prepare_comment: str
    rejected: str
    lock: str
    lock_comment: str
    in_progress: tuple[str, str]
    unavailable: str


def open_drill(
    scope: Construct,
    fn: lambda_.IFunction,
    *,
    table: dynamodb.ITable,
    environment: str,
    kind: str,
    names: DrillOpening,
) -> sfn.Chain:
    """Prepare (validate the request; drill id, lock expiry into `$.drill`), then take the release lock
    as `kind`. A rejected request ends in `names.rejected`; a held lock in `names.in_progress`."""
    prepare = tasks.LambdaInvoke(
        scope,
        names.prepare,
        state_name=names.prepare,
        lambda_function=fn,
        comment=names.prepare_comment,
        payload=sfn.TaskInput.from_object(
            {
                "step": "prepare",
                "request": sfn.JsonPath.entire_payload,
                "execution_arn": sfn.JsonPath.execution_id,
                "execution_name": sfn.JsonPath.execution_name,
                "started_at": sfn.JsonPath.execution_start_time,
            }
        ),
        payload_response_only=True,
        retry_on_service_exceptions=False,
        result_path="$.drill",
    )
    retry_transient(prepare)
    prepare.add_catch(
        sfn.Fail(
            scope,
            names.rejected,
            state_name=names.rejected,
            error_path="$.failure.Error",
            cause_path="$.failure.Cause",
        ),
        errors=["States.ALL"],
        result_path=FAILURE_PATH,
    )
    lock = acquire_lock(
        scope,
        names.lock,
        table=table,
        environment=environment,
        kind=kind,
        owner_path="$.drill.drill_id",
        version=kind,
        requested_by_path="$.drill.requested_by",
        expires_at_path="$.drill.lock_expires_at",
        comment=names.lock_comment,
        in_progress=names.in_progress,
        unavailable=names.unavailable,
    )
    return sfn.Chain.start(prepare).next(lock)


@dataclass(frozen=True)
class DrillClosing:
    """The names of a drill's last states: the lock release, the outcome choice and its ends."""

    release_lock: str
    release_failed: str
    outcome: str
    succeeded: str
    not_recorded: str


def close_drill(
    scope: Construct,
    *,
    table: dynamodb.ITable,
    environment: str,
    names: DrillClosing,
    failures: Sequence[tuple[str, sfn.Fail]],
) -> tasks.DynamoDeleteItem:
    """Release the lock held by `$.drill.drill_id`, then the outcome: the first present path of
    `failures` ends in its Fail, else a recorded SUCCEEDED succeeds, else `names.not_recorded`.
    Returns the release state, which the drill's record step leads to on every path."""
    release_failed = sfn.Fail(
        scope,
        names.release_failed,
        state_name=names.release_failed,
        comment="The lock could not be released; it expires at drill.lock_expires_at",
        error="LockReleaseFailed",
        cause_path="$.lock_release.Cause",
    )
    outcome = sfn.Choice(scope, names.outcome, state_name=names.outcome)
    for path, fail in failures:
        outcome.when(sfn.Condition.is_present(path), fail)
    outcome.when(
        sfn.Condition.and_(
            sfn.Condition.is_present("$.record.outcome"),
            sfn.Condition.string_equals("$.record.outcome", "SUCCEEDED"),
        ),
        sfn.Succeed(scope, names.succeeded, state_name=names.succeeded),
    ).otherwise(
        sfn.Fail(
            scope,
            names.not_recorded,
            state_name=names.not_recorded,
            error="DrillNotRecorded",
            cause="the drill's outcome could not be recorded",
        )
    )
    return release_lock(
        scope,
        names.release_lock,
        table=table,
        environment=environment,
        owner_path="$.drill.drill_id",
        comment="Release the environment's lock held by this drill",
        then=outcome,
        on_error=release_failed,
    )
