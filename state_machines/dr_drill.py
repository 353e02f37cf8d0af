"""The DR drill state machine: restore a backup into a temporary group, prove it, always clean up.

    PrepareDrill -> AcquireLock -> PickSnapshot -> RestoreToTemporaryGroup
    -> WaitForRestore -> CheckRestore -> IsRestoreAvailable (loop, bounded, back-off)
    -> VerifyAgainstManifest -> IsFailoverDrilled -> [TestFailover]
    -> DeleteTemporaryGroup -> RecordDrill -> ReleaseLock -> DidDrillPass
    -> DrillSucceeded | DrillFailed | TemporaryGroupNotDeleted | DrillNotRecorded

Every failure after the lock is caught into `$.failure` and joins the same tail, so the
temporary group is deleted on every path (DeleteTemporaryGroup is idempotent and retried while
the group is still creating or failing over). The lock is the release lock: the same item
(`lock#<env>`), the same conditional write, so a drill and a release never overlap.

Polling costs 3 transitions per check: CheckRestore doubles the wait up to 5 minutes and gives
up (RestoreTimedOut) after a fixed number of checks, so a drill stays under ~120 transitions.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from state_machines.drills import DrillClosing, DrillOpening, close_drill, drill_step, open_drill
from state_machines.policies import catch_all

DRILL_KIND = "dr-drill"


@dataclass(frozen=True)
class DrDrillProps:
    environment: str
    table: dynamodb.ITable
    # `tasks.dr_drill.handler` (control plane) and `tasks.dr_drill.verify_handler` (in the VPC).
    drill_function: lambda_.IFunction
    verify_function: lambda_.IFunction


def dr_drill_definition(scope: Construct, props: DrDrillProps) -> sfn.IChainable:
    fn, env = props.drill_function, props.environment

    # -- the tail every path takes once the lock is held ---------------------------------------
    release_lock = close_drill(
        scope,
        table=props.table,
        environment=env,
        names=DrillClosing(
            release_lock="ReleaseDrillLock",
            release_failed="DrillLockReleaseFailed",
            outcome="DidDrillPass",
            succeeded="DrillSucceeded",
            not_recorded="DrillNotRecorded",
        ),
        failures=[
            (
                "$.failure",
                sfn.Fail(
                    scope,
                    "DrillFailed",
                    state_name="DrillFailed",
                    error_path="$.failure.Error",
                    cause_path="$.failure.Cause",
                ),
            ),
            (
                "$.cleanup_failure",
                sfn.Fail(
                    scope,
                    "TemporaryGroupNotDeleted",
                    state_name="TemporaryGroupNotDeleted",
                    comment="Delete the temporary group by hand (runbooks/dr-drill.md)",
                    error="TemporaryGroupNotDeleted",
                    cause_path="$.cleanup_failure.Cause",
                ),
            ),
        ],
    )

    record = drill_step(
        scope,
        "RecordDrill",
        fn,
        "record",
        result_path="$.record",
        # The whole state: which of snapshot/restore/verify/failure exist depends on the path.
        fields={"state": "$"},
        comment="RTO and RPO, the outcome in the release table, metrics and the notice",
    )
    # A record that cannot be written must not keep the lock.
    record.add_catch(release_lock, errors=["States.ALL"], result_path="$.record_failure")
    record.next(release_lock)

    delete = drill_step(
        scope,
        "DeleteTemporaryGroup",
        fn,
        "delete",
        result_path="$.cleanup",
        fields={"drill": "$.drill"},
        comment="Always: delete the temporary replication group (idempotent)",
    )
    # A group still creating or failing over cannot be deleted yet: wait for it (bounded, ~1.5 h).
    delete.add_retry(
        errors=["TemporaryGroupBusy"],
        interval=Duration.seconds(60),
        backoff_rate=1.5,
        max_attempts=20,
        max_delay=Duration.seconds(300),
        jitter_strategy=sfn.JitterType.FULL,
    )
    delete.add_catch(record, errors=["States.ALL"], result_path="$.cleanup_failure")
    delete.next(record)

    # -- the drill ---------------------------------------------------------------------------
    opening = open_drill(
        scope,
        fn,
        table=props.table,
        environment=env,
        kind=DRILL_KIND,
        names=DrillOpening(
            prepare="PrepareDrill",
            prepare_comment="Validate the request; drill id, temporary group id, lock expiry",
            rejected="DrillRejected",
            lock="AcquireDrillLock",
            lock_comment="One release or DR drill per environment: the release lock's conditional write",
            in_progress=("ReleaseOrDrillInProgress", f"a release or another DR drill holds the {env} lock"),
            unavailable="DrillLockUnavailable",
        ),
    )

    pick = drill_step(
        scope,
        "PickSnapshot",
        fn,
        "pick_snapshot",
        result_path="$.snapshot",
        fields={"drill": "$.drill"},
        comment="The requested snapshot, or the newest backup with a manifest",
    )
    restore = drill_step(
        scope,
        "RestoreToTemporaryGroup",
        fn,
        "restore",
        result_path="$.restore",
        fields={"drill": "$.drill", "snapshot": "$.snapshot"},
        comment="CreateReplicationGroup from the snapshot, shaped like the live group",
    )
    wait = sfn.Wait(
        scope,
        "WaitForRestore",
        state_name="WaitForRestore",
        comment="Back-off between status checks (doubles up to 5 minutes)",
        time=sfn.WaitTime.seconds_path("$.restore.wait_seconds"),
    )
    check = drill_step(
        scope,
        "CheckRestore",
        fn,
        "check_restore",
        result_path="$.restore",
        fields={"drill": "$.drill", "restore": "$.restore"},
        comment="Status of the temporary group; RestoreTimedOut after the last allowed check",
    )
    verify = drill_step(
        scope,
        "VerifyAgainstManifest",
        props.verify_function,
        "verify",
        result_path="$.verify",
        fields={"drill": "$.drill", "snapshot": "$.snapshot", "restore": "$.restore"},
        comment="Key counts per namespace and sampled value digests against the backup manifest",
    )
    failover = drill_step(
        scope,
        "TestFailover",
        fn,
        "test_failover",
        result_path="$.failover",
        fields={"drill": "$.drill"},
        comment="Staging: ElastiCache TestFailover on the temporary group's node group",
    )
    for state in (pick, restore, check, verify, failover):
        catch_all(state, delete)

    is_failover = (
        sfn.Choice(scope, "IsFailoverDrilled", state_name="IsFailoverDrilled")
        .when(sfn.Condition.boolean_equals("$.drill.failover", True), failover.next(delete))
        .otherwise(delete)
    )
    is_available = (
        sfn.Choice(scope, "IsRestoreAvailable", state_name="IsRestoreAvailable")
        .when(sfn.Condition.string_equals("$.restore.status", "available"), verify.next(is_failover))
        .otherwise(wait)
    )
    wait.next(check).next(is_available)
    return opening.next(pick).next(restore).next(wait)
