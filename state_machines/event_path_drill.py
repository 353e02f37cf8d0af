"""The event-path drill state machine: marked events -> forced failures -> DLQ -> redrive -> delivery.

    PrepareEventPathDrill -> AcquireEventPathLock -> DisableMapping
    -> WaitForMapping -> CheckMapping -> IsMappingDisabled (loop, bounded, back-off)
    -> PutMarkedEvents -> StartForcing -> ForceFailures -> AreEventsDeadLettered
       (loop through WaitBeforeForcing, bounded) -> EnableMapping -> StartRedrive
    -> WaitForDelivery -> CheckDelivery -> IsDelivered (loop, bounded, back-off)
    -> RecordEventPathDrill -> ReleaseEventPathLock -> DidEventPathDrillPass
    -> EventPathDrillSucceeded | EventPathDrillFailed | MappingNotRestored | EventPathDrillNotRecorded

Every failure after the lock is caught into `$.failure` and goes through RestoreEventPath (enable
the preview mapping, delete this drill's events from the DLQ) before the record, so green's
fan-out consumes its queue again on every path. The lock is the release lock (`lock#<env>`, the
same conditional write), so this drill, the snapshot drill and a release never overlap.
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

DRILL_KIND = "event-path-drill"
FORCE_WAIT_SECONDS = 5


@dataclass(frozen=True)
class EventPathDrillProps:
    environment: str
    table: dynamodb.ITable
    # `tasks.event_path_drill.handler` (in the VPC: it reads the fan-out's snapshot keys).
    drill_function: lambda_.IFunction


def event_path_drill_definition(scope: Construct, props: EventPathDrillProps) -> sfn.IChainable:
    fn, env = props.drill_function, props.environment

    # -- the tail every path takes once the lock is held ---------------------------------------
    release_lock = close_drill(
        scope,
        table=props.table,
        environment=env,
        names=DrillClosing(
            release_lock="ReleaseEventPathLock",
            release_failed="EventPathLockReleaseFailed",
            outcome="DidEventPathDrillPass",
            succeeded="EventPathDrillSucceeded",
            not_recorded="EventPathDrillNotRecorded",
        ),
        failures=[
            (
                "$.restore_failure",
                sfn.Fail(
                    scope,
                    "MappingNotRestored",
                    state_name="MappingNotRestored",
                    comment="Enable the preview-events mapping by hand (runbooks/dlq-redrive.md)",
                    error="MappingNotRestored",
                    cause_path="$.restore_failure.Cause",
                ),
            ),
            (
                "$.failure",
                sfn.Fail(
                    scope,
                    "EventPathDrillFailed",
                    state_name="EventPathDrillFailed",
                    error_path="$.failure.Error",
                    cause_path="$.failure.Cause",
                ),
            ),
        ],
    )

    record = drill_step(
        scope,
        "RecordEventPathDrill",
        fn,
        "record",
        result_path="$.record",
        fields={"state": "$"},
        comment="Outcome in the release table, metrics and the notice",
    )
    record.add_catch(release_lock, errors=["States.ALL"], result_path="$.record_failure")
    record.next(release_lock)

    restore = drill_step(
        scope,
        "RestoreEventPath",
        fn,
        "restore",
        result_path="$.restored",
        fields={"drill": "$.drill"},
        comment="On failure: enable the preview mapping again, delete this drill's events from the DLQ",
    )
    # A mapping between states refuses changes: wait for it (bounded, about 10 minutes).
    restore.add_retry(
        errors=["MappingBusy"],
        interval=Duration.seconds(10),
        backoff_rate=1.5,
        max_attempts=10,
        max_delay=Duration.seconds(120),
        jitter_strategy=sfn.JitterType.FULL,
    )
    restore.add_catch(record, errors=["States.ALL"], result_path="$.restore_failure")
    restore.next(record)

    # -- the drill ---------------------------------------------------------------------------
    opening = open_drill(
        scope,
        fn,
        table=props.table,
        environment=env,
        kind=DRILL_KIND,
        names=DrillOpening(
            prepare="PrepareEventPathDrill",
            prepare_comment="Validate the request and preflight the event path (mapping enabled, DLQ empty)",
            rejected="EventPathDrillRejected",
            lock="AcquireEventPathLock",
            lock_comment="One release or drill per environment: the release lock's conditional write",
            in_progress=(
                "EventPathReleaseOrDrillInProgress",
                f"a release or another drill holds the {env} lock",
            ),
            unavailable="EventPathLockUnavailable",
        ),
    )

    disable = drill_step(
        scope,
        "DisableMapping",
        fn,
        "disable_mapping",
        result_path="$.mapping",
        fields={},
        comment="Pause preview-events -> fanout:green so nothing consumes the drill's events",
    )
    wait_mapping = sfn.Wait(
        scope,
        "WaitForMapping",
        state_name="WaitForMapping",
        comment="Back-off between mapping checks (doubles up to 60 s)",
        time=sfn.WaitTime.seconds_path("$.mapping.wait_seconds"),
    )
    check_mapping = drill_step(
        scope,
        "CheckMapping",
        fn,
        "check_mapping",
        result_path="$.mapping",
        fields={"mapping": "$.mapping"},
        comment="Mapping state; MappingStuck after the last allowed check",
    )
    put = drill_step(
        scope,
        "PutMarkedEvents",
        fn,
        "put_events",
        result_path="$.put",
        fields={"drill": "$.drill"},
        comment="N marked synthetic events, one channel each (synthetic:drill-<id>-<seq>)",
    )
    start_forcing = sfn.Pass(
        scope,
        "StartForcing",
        state_name="StartForcing",
        result=sfn.Result.from_object({"attempts": 0, "receives": 0}),
        result_path="$.forced",
    )
    force = drill_step(
        scope,
        "ForceFailures",
        fn,
        "force_failures",
        result_path="$.forced",
        fields={"drill": "$.drill", "forced": "$.forced"},
        comment="Receive without deleting until SQS dead-letters every event (maxReceiveCount)",
    )
    wait_force = sfn.Wait(
        scope,
        "WaitBeforeForcing",
        state_name="WaitBeforeForcing",
        comment="Let SQS settle before the next forcing round",
        time=sfn.WaitTime.duration(Duration.seconds(FORCE_WAIT_SECONDS)),
    )
    enable = drill_step(
        scope,
        "EnableMapping",
        fn,
        "enable_mapping",
        result_path="$.mapping",
        fields={},
        comment="Resume preview-events -> fanout:green before the redrive",
    )
    enable.add_retry(
        errors=["MappingBusy"],
        interval=Duration.seconds(10),
        backoff_rate=1.5,
        max_attempts=10,
        max_delay=Duration.seconds(120),
        jitter_strategy=sfn.JitterType.FULL,
    )
    redrive = drill_step(
        scope,
        "StartRedrive",
        fn,
        "start_redrive",
        result_path="$.delivery",
        fields={},
        comment="StartMessageMoveTask: the DLQ back to preview-events",
    )
    wait_delivery = sfn.Wait(
        scope,
        "WaitForDelivery",
        state_name="WaitForDelivery",
        comment="Back-off between delivery checks (doubles up to 60 s)",
        time=sfn.WaitTime.seconds_path("$.delivery.wait_seconds"),
    )
    check_delivery = drill_step(
        scope,
        "CheckDelivery",
        fn,
        "check_delivery",
        result_path="$.delivery",
        fields={"drill": "$.drill", "delivery": "$.delivery"},
        comment="Move task status; each event's snapshot key written by green's fan-out",
    )
    for state in (disable, check_mapping, put, force, enable, redrive, check_delivery):
        catch_all(state, restore)

    is_delivered = (
        sfn.Choice(scope, "IsDelivered", state_name="IsDelivered")
        .when(sfn.Condition.boolean_equals("$.delivery.done", True), record)
        .otherwise(wait_delivery)
    )
    wait_delivery.next(check_delivery).next(is_delivered)
    enable.next(redrive).next(wait_delivery)
    are_dead = (
        sfn.Choice(scope, "AreEventsDeadLettered", state_name="AreEventsDeadLettered")
        .when(sfn.Condition.boolean_equals("$.forced.done", True), enable)
        .otherwise(wait_force)
    )
    wait_force.next(force)
    force.next(are_dead)
    is_disabled = (
        sfn.Choice(scope, "IsMappingDisabled", state_name="IsMappingDisabled")
        .when(sfn.Condition.string_equals("$.mapping.state", "Disabled"), put.next(start_forcing).next(force))
        .otherwise(wait_mapping)
    )
    wait_mapping.next(check_mapping).next(is_disabled)
    return opening.next(disable).next(wait_mapping)
