"""The DR drill state machine through the local engine: success, restore failure, verification
failure, a drill blocked by a release, failover in staging. The temporary group is always deleted
and the lock always released."""

from __future__ import annotations

import json

import boto3
import redis

from tests.support.ops_world import GROUP, REGION, TABLE


def _fill(url: str, n: int = 300) -> None:
    client = redis.Redis.from_url(url)
    for i in range(n):
        client.set(f"cache:v1:snap:chan-{i}", json.dumps({"i": i}))
    client.hset("conn:c1", mapping={"endpoint": "https://x"})


def test_drill_restores_verifies_measures_and_cleans_up(drill, redis_url) -> None:
    _fill(redis_url)
    snapshot = drill.backup()["snapshot"]
    # The first status check still sees the group creating: the loop backs off and checks again.
    drill.after["restore"] = [lambda e: drill.set_group_status(e["drill"]["temp_group_id"], "creating")]
    drill.after["check_restore"] = [
        lambda e: drill.set_group_status(e["drill"]["temp_group_id"], "available")
    ]
    result = drill.run()
    assert result.succeeded, (result.error, result.cause)
    states = result.states_entered()
    assert states.count("CheckRestore") == 2 and states.count("WaitForRestore") == 2
    assert states[-5:] == [
        "DeleteTemporaryGroup",
        "RecordDrill",
        "ReleaseDrillLock",
        "DidDrillPass",
        "DrillSucceeded",
    ]
    record = drill.record("drill-1")
    assert record["outcome"] == "SUCCEEDED" and record["snapshot"] == snapshot
    # Waits of 60 s then 120 s passed on the virtual clock before the group was seen available.
    assert 180 <= float(record["rto_seconds"]) < 240
    assert float(record["rpo_seconds"]) >= 0
    assert record["verification"]["passed"] and record["temporary_group_deleted"]
    assert drill.world.metric("DrDrillSucceeded") == [1.0]
    assert drill.world.metric("DrDrillRtoSeconds")
    [notice] = [n for n in drill.world.notices() if n["kind"] == "dr drill"]
    assert notice["summary"].startswith("SUCCEEDED: restore of " + snapshot)
    assert result.transitions < 60
    drill.assert_cleaned_up()


def test_restore_failure_still_deletes_the_temporary_group(drill, redis_url) -> None:
    _fill(redis_url)
    drill.backup()
    drill.after["restore"] = [lambda e: drill.set_group_status(e["drill"]["temp_group_id"], "create-failed")]
    result = drill.run()
    assert result.status == "FAILED" and result.error == "RestoreFailed"
    assert "create-failed" in result.cause
    assert "DeleteTemporaryGroup" in result.states_entered()
    assert drill.record("drill-1")["outcome"] == "FAILED"
    assert drill.world.metric("DrDrillFailed") == [1.0]
    drill.assert_cleaned_up()


def test_verification_failure_still_deletes_the_temporary_group(drill, redis_url) -> None:
    _fill(redis_url)
    drill.backup()
    # What comes back differs from what was backed up: half the data is gone.
    client = redis.Redis.from_url(redis_url)
    for i in range(150):
        client.delete(f"cache:v1:snap:chan-{i}")
    result = drill.run()
    assert result.status == "FAILED" and result.error == "VerificationFailed"
    assert "count mismatches {'cache:v1': {'expected': 300, 'restored': 150}}" in result.cause
    assert drill.steps.count("delete") == 1
    drill.assert_cleaned_up()


def test_busy_group_is_deleted_once_it_settles(drill, redis_url) -> None:
    _fill(redis_url)
    drill.backup()
    group = {}

    def stuck_creating(event):
        group["id"] = event["drill"]["temp_group_id"]
        drill.set_group_status(group["id"], "creating")

    def verify_breaks(event):
        raise RuntimeError("verification could not connect")

    drill.after["restore"] = [stuck_creating]
    # CheckRestore sees `available` once; the verification then fails while the group is
    # modifying again: deletion is retried until the group settles.
    drill.after["check_restore"] = [lambda e: drill.set_group_status(group["id"], "available")]
    drill.before["verify"] = [lambda e: (drill.set_group_status(group["id"], "modifying"), verify_breaks(e))]
    calls = []

    def settle(event):
        calls.append(1)
        if len(calls) == 3:
            drill.set_group_status(group["id"], "available")

    drill.before["delete"] = [settle]
    result = drill.run()
    assert result.error == "RuntimeError"
    assert drill.steps.count("delete") == 3
    drill.assert_cleaned_up()


def test_drill_is_refused_while_a_release_holds_the_lock(drill, redis_url) -> None:
    _fill(redis_url)
    drill.backup()
    boto3.resource("dynamodb", region_name=REGION).Table(TABLE).put_item(
        Item={
            "pk": "lock#staging",
            "sk": "lock",
            "release_id": "rel-9",
            "kind": "release",
            "expires_at": "2999-01-01T00:00:00.000Z",
        }
    )
    result = drill.run()
    assert result.error == "ReleaseInProgress"
    assert "PickSnapshot" not in result.states_entered()
    assert drill.lock()["release_id"] == "rel-9"
    assert set(drill.world.groups()) == {GROUP}


def test_no_snapshot_fails_cleanly(drill) -> None:
    result = drill.run()
    assert result.error == "NoSnapshot"
    drill.assert_cleaned_up()


def test_failover_drilled_in_staging(drill, redis_url) -> None:
    # moto has no TestFailover: botocore's before-call event answers it (the steps' unit tests use Stubber).
    _fill(redis_url)
    drill.backup()
    requests = []

    def answer(params, **_):
        body = {k: v for k, v in params["body"].items() if k not in ("Action", "Version")}
        requests.append(body)

        class Http:
            status_code, headers, content = 200, {}, b""

        return Http(), {
            "ReplicationGroup": {"ReplicationGroupId": body["ReplicationGroupId"], "Status": "modifying"}
        }

    boto3.setup_default_session()  # clients made from now on (the tasks reuse theirs per session) carry the hook
    boto3.DEFAULT_SESSION.events.register("before-call.elasticache.TestFailover", answer)
    result = drill.run(failover=True)
    assert result.succeeded, (result.error, result.cause)
    assert requests == [{"ReplicationGroupId": "stag-drill-drill-1", "NodeGroupId": "0001"}]
    assert drill.record("drill-1")["failover_tested"] is True
    drill.assert_cleaned_up()
