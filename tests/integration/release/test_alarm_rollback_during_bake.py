"""The alarm-rollback path while a release bakes, through the engine.

The engine's clock runs in manual mode, so the execution sits in its Bake (a Wait state) until the
test moves time. A release-guard alarm goes to ALARM in CloudWatch (moto), and the event that
EventBridge delivers for that state change (shape of `CloudWatch Alarm State Change`) goes to the
alarm-rollback task, as the rule's Lambda target receives it. Then: every `live` alias back on
blue at 100% (and `green` with it), the execution ABORTED with the alarm as its cause, the lock
released, the record ROLLED_BACK, and the detect-to-rollback latency emitted as a metric.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import boto3
import pytest

from orchestrator.engine import LambdaContext
from orchestrator.sandbox.redis_server import RedisServer
from tasks import alarm_rollback
from tests.support.release_rig import Rig, release_rig
from tests.support.release_world import ENV, FUNCTIONS, GUARD_ALARMS, REGION

ACCOUNT = "123456789012"
STEPS = (10, 50, 100)
BAKE_SECONDS = 900


@pytest.fixture(scope="module")
def rig(release_template: dict[str, Any], redis_server: RedisServer) -> Iterator[Rig]:
    with release_rig(release_template, redis_server.url) as built:
        yield built


@pytest.fixture
def manual_clock(rig: Rig) -> Iterator[Any]:
    clock = rig.engine.clock
    clock.auto_advance = False
    try:
        yield clock
    finally:
        clock.auto_advance = True
        clock.advance(24 * 3600)  # wake anything still sleeping on the clock


def alarm_state_change_event(alarm_name: str) -> dict[str, Any]:
    """The event EventBridge delivers for the alarm's transition to ALARM, built from the alarm itself."""
    alarm = boto3.client("cloudwatch", region_name=REGION).describe_alarms(AlarmNames=[alarm_name])[
        "MetricAlarms"
    ][0]
    changed = alarm["StateUpdatedTimestamp"].astimezone(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": changed.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [alarm["AlarmArn"]],
        "detail": {
            "alarmName": alarm_name,
            "state": {
                "value": alarm["StateValue"],
                "reason": alarm["StateReason"],
                # CloudWatch's own format: milliseconds and a +0000 offset.
                "timestamp": changed.strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{changed.microsecond // 1000:03d}+0000",
            },
            "previousState": {
                "value": "OK",
                "reason": "healthy",
                "timestamp": changed.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            },
            "configuration": {
                "metrics": [
                    {
                        "id": "errors",
                        "metricStat": {
                            "metric": {
                                "namespace": alarm["Namespace"],
                                "name": alarm["MetricName"],
                                "dimensions": {},
                            },
                            "period": alarm["Period"],
                            "stat": alarm["Statistic"],
                        },
                        "returnData": True,
                    }
                ]
            },
        },
    }


def context(rig: Rig) -> LambdaContext:
    name = f"{ENV}-release-alarm-rollback"
    clock = rig.engine.clock
    return LambdaContext(
        function_name=name,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        memory_limit_in_mb=256,
        aws_request_id=str(uuid.uuid4()),
        log_group_name=f"/aws/lambda/{name}",
        log_stream_name="local",
        clock=clock,
        deadline=clock.time() + 60,
    )


def bakes_entered(history: list[dict[str, Any]]) -> int:
    return sum(
        1
        for e in history
        if e["type"] == "WaitStateEntered" and e["stateEnteredEventDetails"]["name"] == "Bake"
    )


def emitted_metrics(stdout: str) -> dict[str, list[tuple[float, str]]]:
    """Embedded-metric-format lines on stdout: metric name -> [(value, unit)]."""
    found: dict[str, list[tuple[float, str]]] = {}
    for line in stdout.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                values = document[metric["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    found.setdefault(metric["Name"], []).append((float(value), metric["Unit"]))
    return found


@pytest.mark.parametrize("step", range(len(STEPS)), ids=[f"bake-at-{p}pct" for p in STEPS])
def test_an_alarm_during_a_bake_puts_blue_back_and_stops_the_release(
    rig: Rig, manual_clock: Any, step: int, capsys: pytest.CaptureFixture[str]
) -> None:
    rig.reset()
    blue = {fn: version for fn, (version, _) in rig.world.aliases("live").items()}
    release_id = rig.next_id("alarm-bake")
    request = {
        "release_id": release_id,
        "version": "3.0.0",
        "artifact": rig.world.artifact(release_id),
        "requested_by": "alice",
        "strategy": {"steps": [{"percent": p, "bake_seconds": BAKE_SECONDS} for p in STEPS]},
    }
    execution = rig.engine.start(rig.state_machine_arn, request, name=release_id)
    for held in range(step + 1):
        execution.wait_for(lambda h, n=held: bakes_entered(h) == n + 1, f"bake {held + 1}", timeout=60)
        manual_clock.wait_for_sleepers(1, timeout=30)
        if held < step:
            manual_clock.advance(BAKE_SECONDS)  # this bake passes quietly
    # Held in the bake of `step`: live is split (or fully on green at 100%).
    green = {fn: str(v) for fn, v in rig.world.record(release_id)["green_versions"].items()}
    live = rig.world.aliases("live")
    if STEPS[step] < 100:
        assert live == {fn: (blue[fn], {green[fn]: STEPS[step] / 100}) for fn in FUNCTIONS}
    else:
        assert live == {fn: (green[fn], {}) for fn in FUNCTIONS}
    assert rig.world.lock()["release_id"] == release_id
    capsys.readouterr()

    rig.world.set_alarm(GUARD_ALARMS[0], "ALARM")
    outcome = alarm_rollback.handler(alarm_state_change_event(GUARD_ALARMS[0]), context(rig))

    assert outcome["action"] == "rolled_back" and outcome["release_id"] == release_id, outcome
    assert outcome["execution_stopped"] is True
    assert rig.world.aliases("live") == {fn: (blue[fn], {}) for fn in FUNCTIONS}
    assert rig.world.aliases("green") == {fn: (blue[fn], {}) for fn in FUNCTIONS}
    result = execution.wait(30)
    assert result.status == "ABORTED", result.status
    assert result.error == "AlarmTriggered" and GUARD_ALARMS[0] in (result.cause or ""), (
        result.error,
        result.cause,
    )
    # Stopped inside the bake: no further traffic step, no CheckAlarms of this step, no Finalize.
    assert result.states_entered()[-1] == "Bake"
    assert result.states_entered().count("SetWeights") == step + 1
    assert rig.world.lock() is None
    record = rig.world.record(release_id)
    assert record["status"] == "ROLLED_BACK" and GUARD_ALARMS[0] in record["cause"], record
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics.get("DetectToRollbackMs") == [
        (pytest.approx(outcome["detect_to_rollback_ms"], abs=0.1), "Milliseconds")
    ]
    assert outcome["detect_to_rollback_ms"] >= 0
    transitions = [m["transition"] for m in rig.world.notifications()]
    assert transitions[-1] == "ROLLED_BACK", transitions

    # Time moving on changes nothing: the stopped execution shifts no traffic back.
    manual_clock.advance(BAKE_SECONDS * 3)
    assert rig.world.aliases("live") == {fn: (blue[fn], {}) for fn in FUNCTIONS}
    assert rig.engine.result(result.execution_arn).status == "ABORTED"


def test_a_second_delivery_of_the_same_alarm_event_changes_nothing(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    """EventBridge delivers at least once: a repeat finds no release in progress."""
    rig.reset()
    rig.world.set_alarm(GUARD_ALARMS[1], "ALARM")
    before = rig.world.aliases("live")
    outcome = alarm_rollback.handler(alarm_state_change_event(GUARD_ALARMS[1]), context(rig))
    assert outcome == {"action": "none", "reason": f"no release in progress in {ENV}"}
    assert rig.world.aliases("live") == before
    assert "DetectToRollbackMs" not in emitted_metrics(capsys.readouterr().out)
