"""CheckAlarms: after a bake, is green healthy enough to take more traffic?

Three checks: every alarm of the release gate exists, and none is in ALARM; and green served at
least the step's minimum number of invocations through `live` since the step began
(`AWS/Lambda` Invocations with dimensions FunctionName, Resource `<fn>:live`, ExecutedVersion
`<green version>`, summed over the service functions), so a quiet bake is not mistaken for a
healthy one. In `connections` routing green serves the canary stage through the `green`
aliases, so its invocations are counted under Resource `<fn>:green` (and `<fn>:live` as well at
100%). A step that does not bake has no minimum unless it sets its own (tasks.set_weights).

The gate's alarms are named in RELEASE_ALARM_NAMES (infra sets it from
`contracts.names.release_alarm_names`: one guard per released function, the fan-out DLQ guard
and the composite `<env>-release-health`). DescribeAlarms is asked for exactly those names; an
alarm missing from its answer fails the release as unhealthy, naming it, because a missing
alarm cannot be told apart from a healthy one: a permission scoped too narrowly (composites are
returned only when DescribeAlarms is allowed on `*`) or a renamed alarm would otherwise weaken
the gate without a word.
INSUFFICIENT_DATA is not ALARM: a quiet metric does not fail a release, the invocation
minimum covers that case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.canary import DEFAULT_ROUTING, Routing
from contracts.names import GREEN_ALIAS, LIVE_ALIAS, release_health_alarm_name
from contracts.state import AlarmsChecked, Deploy, Shift
from tasks.common import Settings, client, event_model, iso, logger, metrics_window, task_handler, utc_now
from tasks.errors import AlarmTriggered, GreenUnhealthy, InsufficientGreenTraffic, InvalidState


class RoutingRef(BaseModel):
    """`$.release.routing` (the whole release is not needed here)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    routing: Routing = DEFAULT_ROUTING


class CheckAlarmsInput(BaseModel):
    """CheckAlarms receives the whole state; it reads `shift` and, to count green's traffic,
    `deploy` and the release's `routing`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    shift: Shift
    deploy: Deploy | None = None
    release: RoutingRef = RoutingRef()


ALARM_TYPES = ["MetricAlarm", "CompositeAlarm"]
# DescribeAlarms accepts at most 100 names per call.
MAX_NAMES_PER_CALL = 100


def expected_alarms(settings: Settings) -> tuple[str, ...]:
    """The gate's alarms: RELEASE_ALARM_NAMES, and the composite whatever that list says."""
    health = release_health_alarm_name(settings.environment)
    guards = tuple(name for name in settings.alarm_names if name != health)
    if not guards:
        raise GreenUnhealthy(
            "RELEASE_ALARM_NAMES names no release-guard alarm, so green cannot be judged (a deployment mistake)"
        )
    return (*guards, health)


def alarm_states(names: Sequence[str]) -> dict[str, str]:
    """Name -> state of each named alarm (metric or composite) that DescribeAlarms returns."""
    cloudwatch = client("cloudwatch")
    paginator = cloudwatch.get_paginator("describe_alarms")
    states: dict[str, str] = {}
    for start in range(0, len(names), MAX_NAMES_PER_CALL):
        chunk = list(names[start : start + MAX_NAMES_PER_CALL])
        for page in paginator.paginate(AlarmNames=chunk, AlarmTypes=ALARM_TYPES):
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                states[alarm["AlarmName"]] = alarm["StateValue"]
    return states


def missing_alarms(expected: Sequence[str], states: dict[str, str], health: str) -> str | None:
    """What DescribeAlarms did not return, in words, or None when every expected alarm is there."""
    absent = [name for name in expected if name not in states]
    if not absent:
        return None
    parts = []
    guards = [name for name in absent if name != health]
    if guards:
        parts.append(f"release-guard alarm{'s' if len(guards) > 1 else ''} {', '.join(guards)}")
    if health in absent:
        parts.append(f"composite alarm {health}")
    return (
        f"DescribeAlarms did not return the {' and the '.join(parts)}: green cannot be judged "
        "(deleted or renamed alarm, or cloudwatch:DescribeAlarms not allowed on *)"
    )


def green_invocations(settings: Settings, green: dict[str, str], since: str, alias: str = LIVE_ALIAS) -> int:
    cloudwatch = client("cloudwatch")
    start, end = metrics_window(since)
    total = 0.0
    for fn, version in green.items():
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Invocations",
            Dimensions=[
                {"Name": "FunctionName", "Value": fn},
                {"Name": "Resource", "Value": f"{fn}:{alias}"},
                {"Name": "ExecutedVersion", "Value": version},
            ],
            StartTime=start,
            EndTime=end,
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        total += sum(point["Sum"] for point in points)
    return int(total)


def aliases_serving_green(routing: str, percent: int) -> tuple[str, ...]:
    """Where green's invocations are counted during a step. `invocations` routing: under `live`,
    which weights green. `connections` routing: under `green`, which the canary stage's
    connections invoke; at 100% `live` serves green as well, while the canary stage keeps its
    connections until Finalize sets the share to 0."""
    if routing != "connections":
        return (LIVE_ALIAS,)
    return (GREEN_ALIAS,) if percent < 100 else (GREEN_ALIAS, LIVE_ALIAS)


def check_alarms(settings: Settings, state: CheckAlarmsInput) -> AlarmsChecked:
    """`$.alarms`, or the named error that sends the release to Rollback."""
    expected = expected_alarms(settings)
    states = alarm_states(expected)
    missing = missing_alarms(expected, states, release_health_alarm_name(settings.environment))
    if missing:
        raise GreenUnhealthy(missing)
    firing = sorted(name for name, value in states.items() if value == "ALARM")
    if firing:
        raise AlarmTriggered(f"in ALARM during the bake: {', '.join(firing)}")
    shift = state.shift
    required = shift.min_green_invocations
    served = 0
    if required > 0:
        deploy = state.deploy
        if deploy is None:
            raise InvalidState("CheckAlarmsInput is invalid: deploy: Field required")
        served = sum(
            green_invocations(settings, deploy.green, shift.shifted_at, alias)
            for alias in aliases_serving_green(state.release.routing, shift.percent)
        )
        if served < required:
            raise InsufficientGreenTraffic(
                f"green served {served} invocations at {shift.percent}% during the bake, "
                f"fewer than the required {required}"
            )
    result = AlarmsChecked(
        checked_at=iso(utc_now()), alarms_checked=len(states), green_invocations=served, required=required
    )
    logger.info("green healthy after bake", extra=result.model_dump())
    return result


@task_handler
@event_model(CheckAlarmsInput)
def handler(event: CheckAlarmsInput, context: Any) -> dict[str, Any]:
    return check_alarms(Settings.from_env(), event).model_dump()
