"""Event-path drill steps against moto and the real Redis server: the preflight, the forced
dead-lettering, the redrive and the delivery check, and the failure path's restore."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
import redis

from tasks import event_path_drill as drill_steps
from tasks.errors import DeliveryTimedOut, EventPathNotReady, InvalidDrill, RedriveFailed
from tasks.operations import OpsContext
from tests.support.event_path_world import MAX_RECEIVE, EventPathWorld, build_event_path_world
from tests.support.ops_world import REGION, TABLE, OpsWorld


@pytest.fixture
def world(ops_world: OpsWorld, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EventPathWorld]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    # moto's queue is one server: short polling sees every message, and an empty long poll
    # would only sleep.
    monkeypatch.setattr(drill_steps, "RECEIVE_WAIT_SECONDS", 0)
    path = build_event_path_world(redis_url, monkeypatch)
    for name, value in path.env().items():
        monkeypatch.setenv(name, value)
    yield path


def _prepare(count: int = 4) -> dict:
    return drill_steps.prepare(
        {
            "request": {"events": count, "requested_by": "ann"},
            "execution_name": "ep-1",
            "started_at": "2026-03-11T09:00:00.000Z",
        },
        drill_steps.EventPathSettings.from_env(),
    )


def test_whole_path_dead_letters_redrives_and_delivers(world: EventPathWorld, redis_url: str, clock) -> None:
    settings = drill_steps.EventPathSettings.from_env()
    drill = _prepare()
    assert drill["lock_expires_at"] == "2026-03-11T11:00:00.000Z" and drill["events"] == 4
    assert drill_steps.disable_mapping(settings)["state"] == "Disabled"
    assert drill_steps.check_mapping({"uuid": world.mapping_uuid, "attempts": 0})["state"] == "Disabled"
    put = drill_steps.put_events(drill, settings)
    assert put["count"] == 4 and world.consumer.delivered == []  # nothing consumes a disabled mapping
    forced = drill_steps.force_failures(drill, None, settings)
    assert forced["done"] and forced["dead_lettered"] == 4 and forced["max_receive_count"] == MAX_RECEIVE
    # Each event was received maxReceiveCount times, then moved: the queue is empty, the DLQ full.
    assert world.depth(world.queue_url) == 0 and world.depth(world.dlq_url) == 4
    assert drill_steps.enable_mapping(settings)["state"] == "Enabled"
    delivery = drill_steps.start_redrive(settings)
    assert delivery["schema"] == "3"
    checked = drill_steps.check_delivery(drill, delivery, redis.Redis.from_url(redis_url))
    assert checked["done"] and checked["delivered"] == 4 and checked["move_status"] == "COMPLETED"
    assert sorted(world.consumer.delivered) == [f"drill-ep-1-{i}" for i in range(4)]
    snapshot = json.loads(redis.Redis.from_url(redis_url).get("cache:v3:snap:synthetic:drill-ep-1-02"))
    assert snapshot["synthetic"] is True and snapshot["payload"] == {"drill_id": "ep-1", "seq": 2}
    assert world.depth(world.dlq_url) == 0


def test_preflight_refuses_a_paused_mapping_or_a_busy_dlq(world: EventPathWorld) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=world.dlq_url, MessageBody="{}")
    with pytest.raises(EventPathNotReady, match="DLQ holds 1 message"):
        _prepare()
    boto3.client("lambda", region_name=REGION).update_event_source_mapping(
        UUID=world.mapping_uuid, Enabled=False
    )
    with pytest.raises(EventPathNotReady, match="is Disabled, not Enabled"):
        _prepare()


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"type": "snapshot-restore"}, "type"),
        ({"events": 0}, "events"),
        ({"events": 51}, "events"),
        ({"drill_id": "bad id"}, "drill_id"),
    ],
)
def test_prepare_rejects_bad_requests(world: EventPathWorld, request_, message) -> None:
    with pytest.raises(InvalidDrill, match=message):
        drill_steps.prepare(
            {"request": request_, "execution_name": "ep-1"}, drill_steps.EventPathSettings.from_env()
        )


def test_put_refuses_when_other_messages_wait(world: EventPathWorld) -> None:
    settings = drill_steps.EventPathSettings.from_env()
    drill = _prepare()
    drill_steps.disable_mapping(settings)
    boto3.client("sqs", region_name=REGION).send_message(QueueUrl=world.queue_url, MessageBody="{}")
    with pytest.raises(EventPathNotReady, match="holds 1 message"):
        drill_steps.put_events(drill, settings)


def test_failed_redrive_is_named_and_restore_cleans_up(world: EventPathWorld, redis_url: str) -> None:
    settings = drill_steps.EventPathSettings.from_env()
    drill = _prepare()
    drill_steps.disable_mapping(settings)
    drill_steps.put_events(drill, settings)
    drill_steps.force_failures(drill, None, settings)
    # Somebody else's message in the DLQ is left alone by the restore.
    boto3.client("sqs", region_name=REGION).send_message(QueueUrl=world.dlq_url, MessageBody='{"other": 1}')
    world.moves.fail_with = "AccessDenied on the destination"
    delivery = drill_steps.start_redrive(settings)
    with pytest.raises(RedriveFailed, match="FAILED: AccessDenied"):
        drill_steps.check_delivery(drill, delivery, redis.Redis.from_url(redis_url))
    restored = drill_steps.restore(drill, settings)
    assert restored["purged_from_dlq"] == 4 and world.mapping_state() == "Enabled"
    assert world.depth(world.dlq_url) == 1


def test_delivery_check_is_bounded(world: EventPathWorld, redis_url: str) -> None:
    settings = drill_steps.EventPathSettings.from_env()
    drill = _prepare(2)
    drill_steps.disable_mapping(settings)
    drill_steps.put_events(drill, settings)
    drill_steps.force_failures(drill, None, settings)
    world.consumer.failing = True  # green's fan-out fails every record after the redrive
    drill_steps.enable_mapping(settings)
    delivery = drill_steps.start_redrive(settings)
    r = redis.Redis.from_url(redis_url)
    first = drill_steps.check_delivery(drill, delivery, r, max_checks=2)
    assert not first["done"] and first["delivered"] == 0 and first["wait_seconds"] == 10
    with pytest.raises(DeliveryTimedOut, match="0/2 drill events delivered after 2 checks"):
        drill_steps.check_delivery(drill, first, r, max_checks=2)


def test_record_writes_metrics_notice_and_item(world: EventPathWorld, ops_world: OpsWorld) -> None:
    state = {
        "drill": {
            "drill_id": "ep-1",
            "events": 4,
            "started_at": "2026-03-11T09:00:00.000Z",
            "requested_by": "ann",
        },
        "put": {"sent_at": "2026-03-11T09:00:10.000Z"},
        "forced": {
            "dead_lettered": 4,
            "max_receive_count": 3,
            "dead_lettered_at": "2026-03-11T09:00:15.000Z",
        },
        "delivery": {
            "done": True,
            "delivered": 4,
            "started_at": "2026-03-11T09:00:20.000Z",
            "delivered_at": "2026-03-11T09:00:30.000Z",
        },
    }
    result = drill_steps.record(state, drill_steps.EventPathSettings.from_env(), OpsContext.from_env())
    assert result["outcome"] == "SUCCEEDED" and result["redrive_seconds"] == 10.0
    item = (
        boto3.resource("dynamodb", region_name=REGION)
        .Table(TABLE)
        .get_item(Key={"pk": "drill#ep-1", "sk": "record"})["Item"]
    )
    assert item["kind"] == "event-path-drill" and item["delivered"] == 4
    assert ops_world.metric("EventPathDrillSucceeded") == [1.0]
    [notice] = [n for n in ops_world.notices() if n["kind"] == "event-path drill"]
    assert notice["summary"] == "SUCCEEDED: 4 events dead-lettered in 5s, redriven and delivered in 10s"


def test_cli_starts_the_event_path_drill(ops_world: OpsWorld, capsys) -> None:
    from orchestrator.cli import main

    sfn = boto3.client("stepfunctions", region_name=REGION)
    sfn.create_state_machine(
        name="staging-event-path-drill",
        roleArn="arn:aws:iam::123456789012:role/x",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )
    assert (
        main(
            [
                "drill",
                "start",
                "--env",
                "staging",
                "--type",
                "event-path",
                "--events",
                "5",
                "--drill-id",
                "ep-9",
                "--json",
            ]
        )
        == 0
    )
    started = json.loads(capsys.readouterr().out)
    assert (
        ":stateMachine:" not in started["execution_arn"]
        and "staging-event-path-drill:ep-9" in started["execution_arn"]
    )
    request = json.loads(sfn.describe_execution(executionArn=started["execution_arn"])["input"])
    assert request["type"] == "event-path" and request["events"] == 5 and "failover" not in request
    assert main(["drill", "status", "--env", "staging", "--type", "event-path", "--json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["drill_id"] == "ep-9"


@pytest.mark.parametrize(
    "argv",
    [
        ["drill", "start", "--env", "staging", "--type", "event-path", "--snapshot", "s1"],
        ["drill", "start", "--env", "staging", "--type", "event-path", "--events", "51"],
        ["drill", "start", "--env", "staging", "--events", "3"],
    ],
)
def test_cli_refuses_options_of_the_other_drill(argv, capsys) -> None:
    from orchestrator.cli import main

    assert main(argv) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
