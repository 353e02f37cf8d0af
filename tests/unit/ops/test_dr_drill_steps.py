"""DR drill steps on their own: request validation, and TestFailover through botocore's Stubber
(moto has no TestFailover)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from tasks import dr_drill
from tasks.errors import InvalidDrill, TemporaryGroupBusy

SETTINGS = dr_drill.DrillSettings(
    environment="staging",
    replication_group_id="staging-realtime-cache",
    bucket="b",
    table_name="t",
    subnet_group="sn",
    security_group_ids=("sg-1",),
    auth_secret_arn=None,
    kms_key_id=None,
    node_type=None,
    port=6390,
)


def test_prepare_names_the_temporary_group_and_lock_expiry() -> None:
    drill = dr_drill.prepare(
        {
            "request": {"requested_by": "ann"},
            "execution_name": "Weekly-2026-03-11",
            "started_at": "2026-03-11T09:00:00.000Z",
        },
        SETTINGS,
    )
    assert drill["temp_group_id"] == "stag-drill-weekly-2026-03-11" and len(drill["temp_group_id"]) <= 40
    assert drill["lock_expires_at"] == "2026-03-11T15:00:00.000Z"
    assert drill["failover"] is True and drill["type"] == "snapshot-restore"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"type": "chaos"}, "type: 'chaos'"),
        ({"drill_id": "no spaces"}, "drill_id"),
        ({"snapshot": 3}, "snapshot: must be"),
    ],
)
def test_prepare_rejects_bad_requests(request_, message) -> None:
    with pytest.raises(InvalidDrill, match=message):
        dr_drill.prepare({"request": request_, "execution_name": "d1"}, SETTINGS)


def test_failover_is_refused_in_production() -> None:
    production = dr_drill.DrillSettings(**{**SETTINGS.__dict__, "environment": "production"})
    assert dr_drill.prepare({"request": {}, "execution_name": "d1"}, production)["failover"] is False
    with pytest.raises(InvalidDrill, match="only drilled in staging"):
        dr_drill.prepare({"request": {"failover": True}, "execution_name": "d1"}, production)


def _stubbed(monkeypatch) -> Stubber:
    client = boto3.client("elasticache", region_name="eu-west-1")
    stubber = Stubber(client)
    monkeypatch.setattr(dr_drill, "client", lambda service: client)
    return stubber


def test_test_failover_calls_the_first_node_group(monkeypatch) -> None:
    stubber = _stubbed(monkeypatch)
    group = {
        "ReplicationGroupId": "stag-drill-d1",
        "Status": "available",
        "NodeGroups": [{"NodeGroupId": "0001"}],
    }
    stubber.add_response(
        "describe_replication_groups", {"ReplicationGroups": [group]}, {"ReplicationGroupId": "stag-drill-d1"}
    )
    stubber.add_response(
        "test_failover",
        {"ReplicationGroup": {**group, "Status": "modifying"}},
        {"ReplicationGroupId": "stag-drill-d1", "NodeGroupId": "0001"},
    )
    with stubber:
        result = dr_drill.test_failover({"temp_group_id": "stag-drill-d1"})
    assert result["node_group"] == "0001" and result["status"] == "modifying"
    stubber.assert_no_pending_responses()


def test_delete_while_failing_over_is_busy(monkeypatch) -> None:
    stubber = _stubbed(monkeypatch)
    stubber.add_response(
        "describe_replication_groups",
        {"ReplicationGroups": [{"ReplicationGroupId": "g", "Status": "available"}]},
    )
    stubber.add_client_error(
        "delete_replication_group",
        "InvalidReplicationGroupState",  # the wire code of InvalidReplicationGroupStateFault
        "Replication group g is not in available state",
    )
    with stubber, pytest.raises(TemporaryGroupBusy, match="temporary group g"):
        dr_drill.delete({"temp_group_id": "g"})


def test_delete_of_a_missing_group_is_done(monkeypatch) -> None:
    stubber = _stubbed(monkeypatch)
    stubber.add_client_error("describe_replication_groups", "ReplicationGroupNotFoundFault", "not found")
    with stubber:
        assert dr_drill.delete({"temp_group_id": "g"}) == {"group_id": "g", "deleted": True, "existed": False}


def test_restore_retried_after_the_group_was_created_keeps_it(monkeypatch) -> None:
    # ElastiCache answers CreateReplicationGroup of an existing id with the code
    # ReplicationGroupAlreadyExists (the botocore shape is ReplicationGroupAlreadyExistsFault).
    stubber = _stubbed(monkeypatch)
    stubber.add_response(
        "describe_replication_groups",
        {
            "ReplicationGroups": [
                {"ReplicationGroupId": "staging-realtime-cache", "CacheNodeType": "cache.t4g.small"}
            ]
        },
    )
    stubber.add_client_error("create_replication_group", "ReplicationGroupAlreadyExists", "already exists")
    with stubber:
        result = dr_drill.restore(
            {"temp_group_id": "stag-drill-d1", "drill_id": "d1"}, {"name": "snap-1"}, SETTINGS
        )
    assert result["group_id"] == "stag-drill-d1" and result["status"] == "creating"
