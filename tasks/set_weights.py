"""SetWeights: route the step's share of traffic to green.

`invocations` routing: below 100% every function's `live` alias stays on blue with green as the
additional version (`RoutingConfig.AdditionalVersionWeights`), in lockstep; at 100% `live`
points at green alone.

`connections` routing: below 100% the `live` aliases stay on blue alone and the step's share is
written to the edge's KeyValueStore (tasks.canary_share): the edge function sends that share of
new WebSocket connections to the `canary` stage, served by the `green` aliases, and a connection
stays there for its life. At 100% every `live` alias moves to green, so the connections on
`live` are served by green too; Finalize then sets the share back to 0.

Idempotent: setting the same weights or share twice changes nothing. Before touching an alias the task checks that
this release still holds the environment's lock, so a release that an alarm rollback already
stopped cannot shift traffic back.

A dry run never changes `live`: the step is rehearsed (and its alarms checked) without baking.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.names import LIVE_ALIAS
from contracts.state import Deploy, Release, Shift, ShiftSection
from tasks import canary_share, release_record
from tasks.common import Settings, client, event_model, iso, logger, resource, task_handler, utc_now
from tasks.errors import InvalidState, LockLost


class SetWeightsInput(BaseModel):
    """SetWeights receives the whole state; it reads `release`, `shift` and (unless a dry run) `deploy`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    release: Release
    shift: ShiftSection
    deploy: Deploy | None = None


def assert_lock_held(settings: Settings, release_id: str) -> None:
    item = (
        resource("dynamodb")
        .Table(settings.table_name)
        .get_item(Key=release_record.lock_key(settings.environment), ConsistentRead=True)
        .get("Item")
    )
    holder = item.get("release_id") if item else None
    if holder != release_id or item.get("state") == "ROLLING_BACK":
        raise LockLost(
            f"release {release_id} no longer holds the {settings.environment} lock (holder: {holder})"
        )


def route(lam: Any, function: str, blue: str, green: str, percent: int) -> None:
    if percent >= 100:
        lam.update_alias(
            FunctionName=function,
            Name=LIVE_ALIAS,
            FunctionVersion=green,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
    else:
        lam.update_alias(
            FunctionName=function,
            Name=LIVE_ALIAS,
            FunctionVersion=blue,
            RoutingConfig={"AdditionalVersionWeights": {green: round(percent / 100, 5)}},
        )


def step_of(release: Release, index: int, shifted_at: str) -> Shift:
    steps = release.strategy.steps
    if not 0 <= index < len(steps):
        raise IndexError(f"step index {index} outside the strategy's {len(steps)} steps")
    step = steps[index]
    minimum = step.min_green_invocations
    if minimum is None:
        # The release's minimum is of invocations during a bake: a step that does not bake (both
        # environments' 100% step) has none to count, and CloudWatch would not have them yet
        # (Lambda publishes its metrics a minute at a time). A step's own minimum still holds.
        minimum = release.min_green_invocations if step.bake_seconds > 0 else 0
    return Shift(
        index=index,
        percent=step.percent,
        bake_seconds=step.bake_seconds,
        min_green_invocations=minimum,
        next_index=index + 1,
        is_last=index == len(steps) - 1,
        shifted_at=shifted_at,
    )


def set_weights(settings: Settings, state: SetWeightsInput) -> Shift:
    """`$.shift`: the step now in force."""
    release = state.release
    step = step_of(release, state.shift.next_index, iso(utc_now()))
    if release.dry_run:
        # Rehearsal: live keeps serving blue, so there is nothing to bake or count.
        rehearsal = step.model_copy(update={"bake_seconds": 0, "min_green_invocations": 0, "dry_run": True})
        logger.info("dry run: live alias left unchanged", extra={"step": rehearsal.model_dump()})
        return rehearsal
    assert_lock_held(settings, release.release_id)
    deploy = state.deploy
    if deploy is None:
        raise InvalidState("SetWeightsInput is invalid: deploy: Field required")
    lam = client("lambda")
    detail = step.model_dump(exclude={"shifted_at", "dry_run"})
    position = f"traffic step {step.index + 1}/{len(release.strategy.steps)}"
    if release.routing == "connections" and step.percent < 100:
        written = canary_share.set_share(settings, step.percent)
        detail.update(routing="connections", previous_share=written.previous)
        summary = f"{position}: {step.percent}% of new connections on green (the canary stage)"
    else:
        for fn in settings.functions:
            route(lam, fn, deploy.blue[fn], deploy.green[fn], step.percent)
        detail["routing"] = release.routing
        summary = f"{position}: {step.percent}% of live on green"
    release_record.transition(
        settings, release, "TrafficShifted", summary, detail=detail, updates={"traffic_percent": step.percent}
    )
    return step


@task_handler
@event_model(SetWeightsInput)
def handler(event: SetWeightsInput, context: Any) -> dict[str, Any]:
    return set_weights(Settings.from_env(), event).model_dump()
