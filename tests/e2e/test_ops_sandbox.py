"""The scheduled operations and the drills in the running sandbox, through the CLI, as AWS runs them.

Everything the functions see comes from the sandbox's moto server and its local Redis: the
replication group, the backup bucket, the event source mappings and the schedules are deployed
from the synthesized stage; SQS move tasks, the snapshot export and TestFailover are answered
by the server (orchestrator/sandbox/emulation.py); Cost Explorer's answer is set through moto's
API. Nothing is patched in this process, so the same tests hold whether the functions run
in-process in the sandbox or in Lambda worker processes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import redis
import requests

from contracts import names
from orchestrator.cli import main
from orchestrator.sandbox.state import SandboxState

pytestmark = pytest.mark.slow
ENV = "staging"


def aws(state: SandboxState, service: str) -> Any:
    return boto3.client(service, endpoint_url=state.moto_url, region_name=state.region)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(["--sandbox", *argv, "--json"])
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.strip()]
    return code, (json.loads(lines[-1]) if lines else captured.err)


def lock(state: SandboxState) -> dict[str, Any] | None:
    item = aws(state, "dynamodb").get_item(
        TableName=names.release_table_name(ENV), Key={"pk": {"S": f"lock#{ENV}"}, "sk": {"S": "lock"}}
    )
    return item.get("Item")


def depth(state: SandboxState, queue: str) -> int:
    sqs = aws(state, "sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_schedules_are_deployed(sandbox: SandboxState, capsys: pytest.CaptureFixture[str]) -> None:
    code, listing = cli(capsys, "ops", "schedules", "--env", ENV)
    assert code == 0, listing
    targets = {row["name"]: row["target"] for row in listing["schedules"]}
    assert set(targets) == {names.schedule_name(ENV, key) for key in ("backup", "cost-check", "dr-drill")}
    assert targets[names.schedule_name(ENV, "backup")].endswith(
        f":function:{names.ops_function_name(ENV, 'backup')}"
    )
    assert targets[names.schedule_name(ENV, "dr-drill")].endswith(
        f":stateMachine:{names.dr_drill_state_machine_name(ENV)}"
    )


def test_backup_then_dr_drill_restores_verifies_and_cleans_up(
    sandbox: SandboxState, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = redis.Redis.from_url(sandbox.redis_url)
    for n in range(200):
        cache.set(f"cache:v1:snap:synthetic:e2e-{n}", json.dumps({"id": f"e{n}"}))
    code, backup = cli(capsys, "ops", "run", "backup", "--env", ENV)
    assert code == 0, backup
    result = backup["result"]
    assert result["status"] == "available" and result["total_keys"] >= 200
    snapshot = result["snapshot"]
    assert result["exported"] == [snapshot]
    bucket = result["manifest"].split("/")[2]
    s3 = aws(sandbox, "s3")
    keys = {obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert {f"manifests/{snapshot}.json", f"exports/{snapshot}.json"} <= keys
    assert _eventually(
        lambda: (
            f"{snapshot}-0001.rdb"
            in {obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket, Prefix=snapshot).get("Contents", [])}
        )
    )

    code, drill = cli(capsys, "drill", "start", "--env", ENV, "--drill-id", "e2e-dr", "--failover", "--wait")

    assert code == 0, drill
    assert drill["status"] == "SUCCEEDED", drill
    record = drill["record"]
    assert record["outcome"] == "SUCCEEDED" and record["snapshot"] == snapshot
    assert record["verification"]["passed"] and record["failover_tested"]
    assert record["temporary_group_deleted"]
    groups = {
        g["ReplicationGroupId"]: g["Status"]
        for g in aws(sandbox, "elasticache").describe_replication_groups()["ReplicationGroups"]
    }
    assert groups[names.cache_replication_group_id(ENV)] == "available"
    assert groups.get(record["temporary_group"]) in (None, "deleting"), groups
    assert lock(sandbox) is None


def test_event_path_drill_dead_letters_redrives_and_delivers(
    sandbox: SandboxState, capsys: pytest.CaptureFixture[str]
) -> None:
    queue, dlq = names.queue_name(ENV, "preview-events"), names.dlq_name(ENV, "preview-events")
    lam = aws(sandbox, "lambda")
    queue_arn = aws(sandbox, "sqs").get_queue_attributes(
        QueueUrl=aws(sandbox, "sqs").get_queue_url(QueueName=queue)["QueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    [mapping] = lam.list_event_source_mappings(EventSourceArn=queue_arn)["EventSourceMappings"]
    assert mapping["State"] == "Enabled" and mapping["BatchSize"] == 10

    code, drill = cli(
        capsys,
        "drill",
        "start",
        "--env",
        ENV,
        "--type",
        "event-path",
        "--drill-id",
        "e2e-ep",
        "--events",
        "5",
        "--wait",
    )

    assert code == 0, drill
    assert drill["status"] == "SUCCEEDED", drill
    record = drill["record"]
    assert record["dead_lettered"] == 5 and record["delivered"] == 5 and record["mapping_restored"]
    assert lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled"
    assert depth(sandbox, dlq) == 0
    # The poller deletes a batch once the fan-out returns, a moment after its snapshot keys appear.
    assert _eventually(lambda: depth(sandbox, queue) == 0), depth(sandbox, queue)
    [task] = aws(sandbox, "sqs").list_message_move_tasks(SourceArn=queue_arn.replace(queue, dlq))["Results"]
    assert task["Status"] == "COMPLETED" and task["ApproximateNumberOfMessagesMoved"] == 5
    assert lock(sandbox) is None


def test_cost_check_reads_cost_explorer_and_flags_a_day_over_budget(
    sandbox: SandboxState, capsys: pytest.CaptureFixture[str]
) -> None:
    # Whatever day the sandbox's clock calls yesterday: every day around now cost 40 USD.
    today = datetime.now(UTC).date()
    days = [today + timedelta(days=n) for n in range(-10, 4)]
    answer = {
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": d.isoformat(), "End": (d + timedelta(days=1)).isoformat()},
                "Estimated": False,
                "Groups": [
                    {
                        "Keys": ["Amazon ElastiCache"],
                        "Metrics": {"UnblendedCost": {"Amount": "40", "Unit": "USD"}},
                    }
                ],
            }
            for d in days
        ]
    }
    requests.post(
        f"{sandbox.moto_url}/moto-api/static/ce/cost-and-usage-results",
        json={"results": [answer], "account_id": sandbox.account},
        timeout=10,
    ).raise_for_status()

    code, run = cli(capsys, "ops", "run", "cost-check", "--env", ENV)

    assert code == 0, run
    result = run["result"]
    assert result["total_usd"] == 40 and result["budget_percent"] == 160 and result["anomaly"] is True
    assert result["by_service"][0]["service"] == "Amazon ElastiCache"


def _eventually(check: Any, timeout: float = 10.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)
