"""The release state machine: validate, lock, deploy green, warm, check, (approve), shift, finalize.

Reads top to bottom like the runbook an operator would follow by hand:

    ValidateRequest -> AcquireLock -> RecordReleaseStarted -> DeployGreen
    -> WarmCache <-> IsCacheWarm -> SyntheticChecks -> IsApprovalRequired -> [ApprovalGate]
    -> SetWeights -> Bake -> CheckAlarms -> JudgeCanary -> IsTrafficFullyShifted (loop per step)
    -> Finalize -> IsDryRun -> [CleanUpScratchCache] -> ReleaseLock -> ReleaseSucceeded

Failures before anything changed end in RecordReleaseAborted -> ReleaseLock + Fail; from
DeployGreen on, every failure goes to Rollback -> [DrainCanary] -> [CleanUpGreenCache] -> ReleaseLockAfterRollback
-> ReleaseRolledBack (DrainCanary in `connections` routing: the canary stage's connections closed).

The whole execution state is one JSON object: `release` (the validated request and its
context), `deploy` (blue and green versions, cache schemas), `warm` (the warm-up cursor),
`synthetic`, `approval`, `shift` (the current traffic step), `alarms`, `judgement` (green
against blue after the bake), `failure` (a caught
{Error, Cause}), `rollback` and `drain`. Lambda tasks receive the whole state and return their part;
the sections one task writes and another reads are typed in contracts/state.py.

Each bake is one Wait state, so a release costs a fixed number of transitions per step
(5) whatever the bake length: a 24 h bake adds no history events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from state_machines.lock import acquire_lock as acquire_lock_state
from state_machines.lock import release_lock
from state_machines.policies import (
    catch_all,
    retry_transient,
)

# The Lambda tasks this definition invokes, by the key infra registers them under.
TASK_KEYS = (
    "validate_request",
    "record_release",
    "deploy_green",
    "warm_cache",
    "cleanup_cache",
    "synthetic_checks",
    "request_approval",
    "set_weights",
    "check_alarms",
    "judge_canary",
    "finalize",
    "rollback",
    "drain_canary",
)


@dataclass(frozen=True)
class ReleaseProps:
    environment: str
    table: dynamodb.ITable
    functions: Mapping[str, lambda_.IFunction]

    def fn(self, key: str) -> lambda_.IFunction:
        if key not in self.functions:
            raise KeyError(
                f"release definition needs task function {key!r}; given: {', '.join(self.functions)}"
            )
        return self.functions[key]


def _invoke(
    scope: Construct,
    name: str,
    fn: lambda_.IFunction,
    *,
    result_path: str,
    payload: sfn.TaskInput | None = None,
    comment: str,
) -> tasks.LambdaInvoke:
    return tasks.LambdaInvoke(
        scope,
        name,
        state_name=name,
        comment=comment,
        lambda_function=fn,
        # Without a payload the task receives the whole state (Parameters "$" is not valid ASL).
        payload=payload,
        payload_response_only=True,
        retry_on_service_exceptions=False,  # our own policy (with jitter) is added instead
        result_path=result_path,
    )


def _release_lock(
    scope: Construct, name: str, props: ReleaseProps, then: sfn.IChainable, on_error: sfn.IChainable
) -> tasks.DynamoDeleteItem:
    return release_lock(
        scope,
        name,
        table=props.table,
        environment=props.environment,
        owner_path="$.release.release_id",
        comment="Release the environment's release lock held by this release",
        then=then,
        on_error=on_error,
    )


def _cleanup_payload(dry_run: bool | None = None) -> sfn.TaskInput:
    return sfn.TaskInput.from_object(
        {
            "release_id": sfn.JsonPath.string_at("$.release.release_id"),
            "blue_schema": sfn.JsonPath.string_at("$.deploy.blue_schema"),
            "green_schema": sfn.JsonPath.string_at("$.deploy.green_schema"),
            "dry_run": sfn.JsonPath.string_at("$.release.dry_run") if dry_run is None else dry_run,
        }
    )


def release_definition(scope: Construct, props: ReleaseProps) -> sfn.IChainable:
    """The release workflow as a CDK chain (states are created inside `scope`)."""
    env = props.environment
    lock_release_failed = sfn.Fail(
        scope,
        "LockReleaseFailed",
        state_name="LockReleaseFailed",
        comment="The lock could not be released; it expires at release.lock_expires_at",
        error="LockReleaseFailed",
        cause_path="$.lock_release.Cause",
    )

    # -- the rollback path (anything changed: put blue back) ---------------------------------
    rolled_back = sfn.Fail(
        scope,
        "ReleaseRolledBack",
        state_name="ReleaseRolledBack",
        error="ReleaseRolledBack",
        cause_path="$.rollback.cause",
    )
    release_after_rollback = _release_lock(
        scope, "ReleaseLockAfterRollback", props, rolled_back, lock_release_failed
    )
    cleanup_green = _invoke(
        scope,
        "CleanUpGreenCache",
        props.fn("cleanup_cache"),
        result_path="$.cleanup",
        payload=_cleanup_payload(),
        comment="Delete green's cache namespace when it differs from blue's",
    )
    retry_transient(cleanup_green)
    # A leftover namespace costs memory, not correctness: clean-up failures do not block.
    cleanup_green.add_catch(release_after_rollback, errors=["States.ALL"], result_path="$.cleanup_failure")
    cleanup_green.next(release_after_rollback)
    was_green_deployed = (
        sfn.Choice(scope, "WasGreenDeployed", state_name="WasGreenDeployed")
        .when(sfn.Condition.is_present("$.deploy.green_schema"), cleanup_green)
        .otherwise(release_after_rollback)
    )
    rollback_failed = sfn.Fail(
        scope,
        "RollbackFailed",
        state_name="RollbackFailed",
        comment="Blue could not be restored: the lock stays held and an operator must act",
        error="RollbackFailed",
        cause_path="$.rollback_failure.Cause",
    )
    rollback = _invoke(
        scope,
        "Rollback",
        props.fn("rollback"),
        result_path="$.rollback",
        comment="Every live and green alias back on blue at 100%, outcome recorded and notified",
    )
    retry_transient(rollback, attempts=8)
    rollback.add_catch(rollback_failed, errors=["States.ALL"], result_path="$.rollback_failure")
    drain_canary = _invoke(
        scope,
        "DrainCanary",
        props.fn("drain_canary"),
        result_path="$.drain",
        comment="Close every connection on the canary stage; its clients reconnect through live to blue",
    )
    retry_transient(drain_canary)
    # Blue already serves the canary stage (its `green` aliases are back on blue): a failed drain
    # is recorded, and the rollback goes on to release the lock.
    drain_canary.add_catch(was_green_deployed, errors=["States.ALL"], result_path="$.drain_failure")
    drain_canary.next(was_green_deployed)
    rollback.next(
        sfn.Choice(scope, "IsConnectionRouting", state_name="IsConnectionRouting")
        .when(
            sfn.Condition.and_(
                sfn.Condition.is_present("$.release.routing"),
                sfn.Condition.string_equals("$.release.routing", "connections"),
            ),
            drain_canary,
        )
        .otherwise(was_green_deployed)
    )

    # -- before anything changed: release the lock and fail ------------------------------------
    aborted = sfn.Fail(
        scope,
        "ReleaseAborted",
        state_name="ReleaseAborted",
        error_path="$.failure.Error",
        cause_path="$.failure.Cause",
    )
    release_after_abort = _release_lock(scope, "ReleaseLockAfterAbort", props, aborted, lock_release_failed)
    # An attempt may have written the record before it failed: the record must tell the outcome.
    record_aborted = _invoke(
        scope,
        "RecordReleaseAborted",
        props.fn("record_release"),
        result_path=sfn.JsonPath.DISCARD,
        payload=sfn.TaskInput.from_object(
            {"release": sfn.JsonPath.object_at("$.release"), "failure": sfn.JsonPath.object_at("$.failure")}
        ),
        comment="Mark the release record ABORTED (nothing had changed) before releasing the lock",
    )
    retry_transient(record_aborted)
    # Releasing the lock matters more than the record: a record failure still releases it.
    record_aborted.add_catch(release_after_abort, errors=["States.ALL"], result_path="$.record_failure")
    record_aborted.next(release_after_abort)

    # -- the happy path ----------------------------------------------------------------------
    validate = _invoke(
        scope,
        "ValidateRequest",
        props.fn("validate_request"),
        result_path="$",
        payload=sfn.TaskInput.from_object(
            {
                "request": sfn.JsonPath.entire_payload,
                "execution_arn": sfn.JsonPath.execution_id,
                "execution_name": sfn.JsonPath.execution_name,
                "started_at": sfn.JsonPath.execution_start_time,
            }
        ),
        comment="Validate the release request again: StartExecution can bypass the CLI",
    )
    retry_transient(validate)
    # ResultPath "$": the input may not even be a JSON object (StartExecution accepts any JSON),
    # and a failure must still end in RequestRejected naming the problem.
    validate.add_catch(
        sfn.Fail(
            scope, "RequestRejected", state_name="RequestRejected", error_path="$.Error", cause_path="$.Cause"
        ),
        errors=["States.ALL"],
        result_path="$",
    )

    acquire_lock = acquire_lock_state(
        scope,
        "AcquireLock",
        table=props.table,
        environment=env,
        kind="release",
        owner_path="$.release.release_id",
        version="$.release.version",
        requested_by_path="$.release.requested_by",
        expires_at_path="$.release.lock_expires_at",
        comment="One release or DR drill per environment: a conditional write of the lock item",
        in_progress=("AnotherReleaseInProgress", f"another release or DR drill holds the {env} lock"),
        unavailable="LockUnavailable",
    )

    record_started = _invoke(
        scope,
        "RecordReleaseStarted",
        props.fn("record_release"),
        result_path="$.record",
        comment="Write the release record and its audit trail (who, what, when)",
    )
    catch_all(retry_transient(record_started), record_aborted)

    deploy_green = _invoke(
        scope,
        "DeployGreen",
        props.fn("deploy_green"),
        result_path="$.deploy",
        payload=sfn.TaskInput.from_object({"release": sfn.JsonPath.object_at("$.release")}),
        comment="Publish the artifact as a new version of every service function and point green at it",
    )
    catch_all(retry_transient(deploy_green), rollback)

    warm_cache = _invoke(
        scope,
        "WarmCache",
        props.fn("warm_cache"),
        result_path="$.warm",
        payload=sfn.TaskInput.from_object(
            {
                "release_id": sfn.JsonPath.string_at("$.release.release_id"),
                "environment": sfn.JsonPath.string_at("$.release.environment"),
                "blue_schema": sfn.JsonPath.string_at("$.deploy.blue_schema"),
                "green_schema": sfn.JsonPath.string_at("$.deploy.green_schema"),
                "cursor": sfn.JsonPath.string_at("$.warm.cursor"),
                "dry_run": sfn.JsonPath.string_at("$.release.dry_run"),
            }
        ),
        comment="Copy blue's cache namespace into green's, one resumable batch per call",
    )
    catch_all(retry_transient(warm_cache), rollback)

    synthetic_checks = _invoke(
        scope,
        "SyntheticChecks",
        props.fn("synthetic_checks"),
        result_path="$.synthetic",
        payload=sfn.TaskInput.from_object(
            {
                "release_id": sfn.JsonPath.string_at("$.release.release_id"),
                "environment": sfn.JsonPath.string_at("$.release.environment"),
                "clients": sfn.JsonPath.number_at("$.release.checks.clients"),
                "messages": sfn.JsonPath.number_at("$.release.checks.messages"),
                "p99_latency_ms": sfn.JsonPath.number_at("$.release.checks.p99_latency_ms"),
                "min_success_rate": sfn.JsonPath.number_at("$.release.checks.min_success_rate"),
            }
        ),
        comment="Real WebSocket clients against the preview stage (green): connect, subscribe, fan-out",
    )
    catch_all(retry_transient(synthetic_checks), rollback)

    approval_gate = tasks.LambdaInvoke(
        scope,
        "ApprovalGate",
        state_name="ApprovalGate",
        comment="Wait for `orchestrator release approve|reject <release-id>` (or the timeout)",
        lambda_function=props.fn("request_approval"),
        integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
        payload=sfn.TaskInput.from_object(
            {
                "task_token": sfn.JsonPath.task_token,
                "release": sfn.JsonPath.object_at("$.release"),
                "synthetic": sfn.JsonPath.object_at("$.synthetic"),
            }
        ),
        task_timeout=sfn.Timeout.at("$.release.approval_timeout_seconds"),
        retry_on_service_exceptions=False,
        result_path="$.approval",
    )
    # Never retry the wait itself: a timeout or a rejection is the operator's answer.
    catch_all(retry_transient(approval_gate, retry_timeouts=False), rollback)

    set_weights = _invoke(
        scope,
        "SetWeights",
        props.fn("set_weights"),
        result_path="$.shift",
        comment="Route this step's share of every live alias to green, all functions in lockstep",
    )
    catch_all(retry_transient(set_weights), rollback)
    bake = sfn.Wait(
        scope,
        "Bake",
        state_name="Bake",
        comment="Let green take this step's traffic while the alarms watch",
        time=sfn.WaitTime.seconds_path("$.shift.bake_seconds"),
    )
    check_alarms = _invoke(
        scope,
        "CheckAlarms",
        props.fn("check_alarms"),
        result_path="$.alarms",
        comment="Release-guard alarms, the composite, and green's invocation count during the bake",
    )
    catch_all(retry_transient(check_alarms), rollback)
    judge_canary = _invoke(
        scope,
        "JudgeCanary",
        props.fn("judge_canary"),
        result_path="$.judgement",
        comment="Green against blue over the bake: error-rate test and p99 ratio; a fail rolls back",
    )
    catch_all(retry_transient(judge_canary), rollback)

    finalize = _invoke(
        scope,
        "Finalize",
        props.fn("finalize"),
        result_path="$.finalize",
        comment="Every live alias on green alone (a dry run leaves live untouched), outcome recorded",
    )
    catch_all(retry_transient(finalize), rollback)
    succeeded = sfn.Succeed(scope, "ReleaseSucceeded", state_name="ReleaseSucceeded")
    release_lock = _release_lock(scope, "ReleaseLock", props, succeeded, lock_release_failed)
    cleanup_scratch = _invoke(
        scope,
        "CleanUpScratchCache",
        props.fn("cleanup_cache"),
        result_path="$.cleanup",
        payload=_cleanup_payload(dry_run=True),
        comment="Delete the dry run's scratch cache namespace",
    )
    retry_transient(cleanup_scratch)
    cleanup_scratch.add_catch(release_lock, errors=["States.ALL"], result_path="$.cleanup_failure")

    is_dry_run = (
        sfn.Choice(scope, "IsDryRun", state_name="IsDryRun")
        .when(sfn.Condition.boolean_equals("$.release.dry_run", True), cleanup_scratch.next(release_lock))
        .otherwise(release_lock)
    )
    shift_loop = (
        sfn.Choice(scope, "IsTrafficFullyShifted", state_name="IsTrafficFullyShifted")
        .when(sfn.Condition.boolean_equals("$.shift.is_last", True), finalize.next(is_dry_run))
        .otherwise(set_weights)
    )
    set_weights.next(bake).next(check_alarms).next(judge_canary).next(shift_loop)
    approval_choice = (
        sfn.Choice(scope, "IsApprovalRequired", state_name="IsApprovalRequired")
        .when(sfn.Condition.string_equals("$.release.approval", "required"), approval_gate.next(set_weights))
        .otherwise(set_weights)
    )
    warm_loop = (
        sfn.Choice(scope, "IsCacheWarm", state_name="IsCacheWarm")
        .when(sfn.Condition.boolean_equals("$.warm.done", True), synthetic_checks.next(approval_choice))
        .otherwise(warm_cache)
    )
    return (
        sfn.Chain.start(validate)
        .next(acquire_lock)
        .next(record_started)
        .next(deploy_green)
        .next(warm_cache)
        .next(warm_loop)
    )
