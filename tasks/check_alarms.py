"""CheckAlarms: after a bake, is green healthy enough to take more traffic?

Three checks: no release-guard alarm (`<env>-release-guard-*`) and not the composite
`<env>-release-health` is in ALARM; and green served at least the step's minimum number of
invocations through `live` since the step began (`AWS/Lambda` Invocations with dimensions
FunctionName, Resource `<fn>:live`, ExecutedVersion `<green version>`, summed over the
service functions), so a quiet bake is not mistaken for a healthy one.
INSUFFICIENT_DATA is not ALARM: a quiet metric does not fail a release, the invocation
minimum covers that case.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tasks.common import LIVE_ALIAS, Settings, client, iso, logger, parse_time, task_handler, utc_now
from tasks.errors import AlarmTriggered, GreenUnhealthy, InsufficientGreenTraffic

ALARM_TYPES = ["MetricAlarm", "CompositeAlarm"]


def alarm_states(settings: Settings) -> dict[str, str]:
    """Name -> state of every release-guard alarm and the composite."""
    cloudwatch = client("cloudwatch")
    states: dict[str, str] = {}
    paginator = cloudwatch.get_paginator("describe_alarms")
    queries: list[dict[str, Any]] = [
        {"AlarmNamePrefix": settings.guard_alarm_prefix, "AlarmTypes": ALARM_TYPES},
        {"AlarmNames": [settings.health_alarm_name], "AlarmTypes": ALARM_TYPES},
    ]
    for query in queries:
        for page in paginator.paginate(**query):
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                states[alarm["AlarmName"]] = alarm["StateValue"]
    return states


def green_invocations(settings: Settings, green: dict[str, str], since: str) -> int:
    cloudwatch = client("cloudwatch")
    start = parse_time(since)
    # The end lies ahead so the current minute is counted (CloudWatch excludes EndTime).
    end = utc_now() + timedelta(minutes=1)
    if end <= start:
        end = start + timedelta(minutes=1)
    total = 0.0
    for fn, version in green.items():
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Invocations",
            Dimensions=[
                {"Name": "FunctionName", "Value": fn},
                {"Name": "Resource", "Value": f"{fn}:{LIVE_ALIAS}"},
                {"Name": "ExecutedVersion", "Value": version},
            ],
            StartTime=start,
            EndTime=end,
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        total += sum(point["Sum"] for point in points)
    return int(total)


def check_alarms(settings: Settings, state: dict[str, Any]) -> dict[str, Any]:
    states = alarm_states(settings)
    if not states:
        # Without its guard alarms a release would shift traffic blind: refuse.
        raise GreenUnhealthy(
            f"no release-guard alarm ({settings.guard_alarm_prefix}*) and no {settings.health_alarm_name} exists, "
            "so green cannot be judged"
        )
    firing = sorted(name for name, value in states.items() if value == "ALARM")
    if firing:
        raise AlarmTriggered(f"in ALARM during the bake: {', '.join(firing)}")
    shift = state["shift"]
    required = int(shift.get("min_green_invocations", 0))
    served = 0
    if required > 0:
        served = green_invocations(settings, state["deploy"]["green"], shift["shifted_at"])
        if served < required:
            raise InsufficientGreenTraffic(
                f"green served {served} invocations at {shift['percent']}% during the bake, "
                f"fewer than the required {required}"
            )
    result = {"checked_at": iso(utc_now()), "alarms_checked": len(states), "green_invocations": served, "required": required}
    logger.info("green healthy after bake", extra=result)
    return result


@task_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return check_alarms(Settings.from_env(), event)
