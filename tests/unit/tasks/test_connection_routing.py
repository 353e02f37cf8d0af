"""The release tasks in `connections` routing, against moto and the sandbox's CloudFront
KeyValueStore (answered in-process under mock_aws, through a real boto3 client signing SigV4A):
SetWeights writes the edge's share and leaves `live` alone until 100%, Finalize and Rollback
return the share to 0, JudgeCanary reads green through the `green` aliases, and the alarm
rollback drains the canary stage before it releases the lock."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.cloudwatch.models import Statistics

from contracts.canary import CANARY_SHARE_KEY, parse_share
from contracts.state import ReleaseState, Shift
from orchestrator.engine.moto_hooks import percentile_statistics
from orchestrator.sandbox import emulation
from orchestrator.sandbox.keyvaluestore import STORES
from tasks import alarm_rollback as alarm_rollback_module
from tasks import canary_share, release_record
from tasks.alarm_rollback import alarm_rollback
from tasks.deploy_green import deploy_green
from tasks.errors import CanaryFailed, InvalidState
from tasks.finalize import FinalizeInput, finalize
from tasks.judge_canary import JudgeCanaryInput, judge_canary
from tasks.rollback import RollbackInput, rollback
from tasks.set_weights import SetWeightsInput, set_weights
from tests.support.release_world import FUNCTIONS, GUARD_ALARMS, record_version_traffic
from tests.support.task_state import hold_lock, task_input, validated_state
from tests.unit.tasks.test_alarm_rollback import alarm_event, running_execution

ACCOUNT = "123456789012"
STEPS = {
    "steps": [
        {"percent": 10, "bake_seconds": 60},
        {"percent": 50, "bake_seconds": 60},
        {"percent": 100, "bake_seconds": 0},
    ]
}


@pytest.fixture
def store(world: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    emulation.install()
    created = STORES.create_in(ACCOUNT, "staging-realtime-canary")
    monkeypatch.setenv("CANARY_KVS_ARN", created.arn)
    try:
        yield created.arn
    finally:
        STORES.clear()
        emulation.uninstall()


@pytest.fixture
def csettings(store: str):
    from tasks.settings import ReleaseTaskSettings

    return ReleaseTaskSettings.from_env()


def kvs() -> Any:
    return boto3.client("cloudfront-keyvaluestore", region_name="eu-west-1")


def share(arn: str) -> str | None:
    try:
        return str(kvs().get_key(KvsARN=arn, Key=CANARY_SHARE_KEY)["Value"])
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
        return None


def deployed(world: Any, settings: Any, **overrides: Any) -> ReleaseState:
    state = validated_state(world, settings, routing="connections", strategy=STEPS, **overrides)
    hold_lock(world)
    release_record.start(settings, state.release)
    return state.with_sections(deploy=deploy_green(settings, state.release))


def shifted(settings: Any, state: ReleaseState) -> ReleaseState:
    return state.with_sections(shift=set_weights(settings, task_input(SetWeightsInput, state)))


def test_steps_below_100_move_the_edge_share_and_leave_live_on_blue(world, csettings, store):
    state = shifted(csettings, deployed(world, csettings))
    assert state.release.routing == "connections"
    assert share(store) == "10"
    assert world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS}
    assert world.aliases("green") == {fn: ("2", {}) for fn in FUNCTIONS}
    state = shifted(csettings, state)
    assert share(store) == "50" and world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS}
    # At 100% every live alias moves to green: the live stage's connections are served by green too.
    state = shifted(csettings, state)
    assert isinstance(state.shift, Shift) and state.shift.is_last
    assert world.aliases("live") == {fn: ("2", {}) for fn in FUNCTIONS}
    shifts = [e for e in release_record.events(csettings, "rel-1") if e["transition"] == "TrafficShifted"]
    assert [e["summary"].split(": ", 1)[1] for e in shifts] == [
        "10% of new connections on green (the canary stage)",
        "50% of new connections on green (the canary stage)",
        "100% of live on green",
    ]
    assert world.record("rel-1")["routing"] == "connections"
    # Finalize: live stays on green, and the edge sends nobody to the canary stage any more.
    assert finalize(csettings, task_input(FinalizeInput, state)).status == "SUCCEEDED"
    assert share(store) == "0" and world.aliases("live") == {fn: ("2", {}) for fn in FUNCTIONS}


def test_setting_the_same_share_again_writes_nothing(world, csettings, store):
    state = deployed(world, csettings)
    shifted(csettings, state)
    etag = kvs().describe_key_value_store(KvsARN=store)["ETag"]
    # A retried SetWeights (the first attempt timed out after writing) changes nothing.
    shifted(csettings, state)
    assert kvs().describe_key_value_store(KvsARN=store)["ETag"] == etag


def test_a_write_that_meets_another_writer_reads_the_store_again(world, csettings, store, monkeypatch):
    real = kvs()
    interfered = []

    class Racing:
        """Another writer changes the store between SetWeights' read of the ETag and its write."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def put_key(self, **kwargs: Any) -> Any:
            if not interfered:
                etag = real.describe_key_value_store(KvsARN=store)["ETag"]
                real.put_key(KvsARN=store, Key="other", Value="x", IfMatch=etag)
                interfered.append(True)
            return real.put_key(**kwargs)

    monkeypatch.setattr(canary_share, "client", lambda service: Racing())
    written = canary_share.set_share(csettings, 25)
    assert written.written and interfered and share(store) == "25"


def test_rollback_closes_the_edge_before_moving_the_aliases(world, csettings, store):
    state = shifted(csettings, deployed(world, csettings))
    state = state.with_sections(failure={"Error": "CanaryFailed", "Cause": "green judged worse"})
    rolled = rollback(csettings, task_input(RollbackInput, state))
    assert rolled.canary_share_reset is True and share(store) == "0"
    assert world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS}
    assert world.aliases("green") == {fn: ("1", {}) for fn in FUNCTIONS}
    assert world.record("rel-1")["status"] == "ROLLED_BACK"


def test_connections_routing_without_the_store_is_refused_by_name(world, settings, monkeypatch):
    monkeypatch.delenv("CANARY_KVS_ARN", raising=False)
    state = deployed(world, settings)
    with pytest.raises(InvalidState, match="CANARY_KVS_ARN is not set"):
        set_weights(settings, task_input(SetWeightsInput, state))
    assert world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS}


def test_a_malformed_store_arn_is_a_settings_error(world, monkeypatch):
    from tasks.settings import ReleaseTaskSettings, SettingsError

    monkeypatch.setenv("CANARY_KVS_ARN", "arn:aws:s3:::not-a-store")
    with pytest.raises(SettingsError, match="CANARY_KVS_ARN: must be a CloudFront KeyValueStore ARN"):
        ReleaseTaskSettings.from_env()


@pytest.fixture
def percentiles(monkeypatch):
    original = Statistics.get_statistics_for_type
    monkeypatch.setattr(Statistics, "get_statistics_for_type", percentile_statistics(original))


def test_the_judge_reads_green_from_the_canary_stage_aliases(world, csettings, store, percentiles):
    state = shifted(csettings, deployed(world, csettings))
    assert state.deploy is not None
    rng = random.Random(3)
    for fn in FUNCTIONS:
        # Green serves the canary stage's connections (alias `green`), 200 ms slower; blue `live`'s.
        green = [rng.uniform(5, 25) + 200 for _ in range(300)]
        record_version_traffic(fn, state.deploy.green[fn], green, alias="green")
        record_version_traffic(fn, state.deploy.blue[fn], [rng.uniform(5, 25) for _ in range(2700)])
        # Green's invocations through `live` would be invocations routing's: none here, and the
        # judge must not take blue's `live` figures for green's.
    with pytest.raises(CanaryFailed, match="over the x1.5 tolerance"):
        judge_canary(csettings, task_input(JudgeCanaryInput, state))


def test_the_alarm_rollback_closes_the_edge_and_drains_before_releasing_the_lock(
    world, csettings, store, monkeypatch
):
    execution_arn = running_execution()
    state = validated_state(world, csettings, routing="connections", strategy=STEPS)
    state = state.model_copy(
        update={"release": state.release.model_copy(update={"execution_arn": execution_arn})}
    )
    hold_lock(world, execution_arn=execution_arn)
    release_record.start(csettings, state.release)
    state = shifted(csettings, state.with_sections(deploy=deploy_green(csettings, state.release)))
    assert share(store) == "10"
    invoked: list[dict[str, Any]] = []

    class Drain:
        def invoke(self, **kwargs: Any) -> dict[str, Any]:
            # The lock is still held while the canary stage drains.
            assert world.lock() is not None
            invoked.append({**kwargs, "Payload": json.loads(kwargs["Payload"])})
            body = {"closed": 7, "gone": 1, "remaining": 0, "rounds": 2, "drain_seconds": 1.5}

            class Stream:
                def read(self) -> bytes:
                    return json.dumps(body).encode()

            return {"StatusCode": 200, "Payload": Stream()}

    monkeypatch.setattr(alarm_rollback_module, "_drain_client", lambda: Drain())
    result = alarm_rollback(csettings, alarm_event(GUARD_ALARMS[0]))
    assert result["action"] == "rolled_back" and result["drain"]["closed"] == 7
    assert share(store) == "0"
    assert world.aliases("live") == {fn: ("1", {}) for fn in FUNCTIONS}
    assert world.aliases("green") == {fn: ("1", {}) for fn in FUNCTIONS}
    assert world.lock() is None
    (call,) = invoked
    assert call["FunctionName"] == "staging-release-drain-canary"
    assert call["InvocationType"] == "RequestResponse"
    assert call["Payload"]["release"]["release_id"] == "rel-1"
    finished = [e for e in release_record.events(csettings, "rel-1") if e["transition"] == "ROLLED_BACK"]
    assert finished[0]["detail"]["drain"]["closed"] == 7


def test_a_failed_drain_is_reported_and_the_lock_still_released(world, csettings, store, monkeypatch):
    execution_arn = running_execution()
    state = validated_state(world, csettings, routing="connections", strategy=STEPS)
    state = state.model_copy(
        update={"release": state.release.model_copy(update={"execution_arn": execution_arn})}
    )
    hold_lock(world, execution_arn=execution_arn)
    release_record.start(csettings, state.release)

    class Failing:
        def invoke(self, **kwargs: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}}, "Invoke")

    monkeypatch.setattr(alarm_rollback_module, "_drain_client", lambda: Failing())
    result = alarm_rollback(csettings, alarm_event(GUARD_ALARMS[0]))
    assert result["action"] == "rolled_back" and "not invoked" in result["drain"]["error"]
    # No step had run: the store never held a share, which the edge reads as 0.
    assert world.lock() is None and parse_share(share(store)) == 0


def test_an_invocations_release_never_touches_the_edge(world, csettings, store, monkeypatch):
    execution_arn = running_execution()
    state = validated_state(world, csettings, strategy=STEPS)
    state = state.model_copy(
        update={"release": state.release.model_copy(update={"execution_arn": execution_arn})}
    )
    hold_lock(world, execution_arn=execution_arn)
    release_record.start(csettings, state.release)
    shifted(csettings, state.with_sections(deploy=deploy_green(csettings, state.release)))
    monkeypatch.setattr(alarm_rollback_module, "_drain_client", lambda: pytest.fail("no drain"))
    result = alarm_rollback(csettings, alarm_event(GUARD_ALARMS[0]))
    assert "drain" not in result and share(store) is None
