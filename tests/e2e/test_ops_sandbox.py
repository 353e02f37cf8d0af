"""The scheduled operations and the drills in the running sandbox, through the CLI, as AWS runs them.

Everything the functions see comes from the sandbox's moto server and its local Redis: the
replication group, the backup bucket, the event source mappings and the schedules are deployed
from the synthesized stage; SQS move tasks, the snapshot export (a real RDB of the server's
data), restores (a second server loaded from the snapshot) and TestFailover are answered by the
server (orchestrator/sandbox/emulation.py, cache_data.py); Cost Explorer answers from the
sandbox's seeded cost history, set through its control endpoint. The schedules fire on the
sandbox's compressed clock, moved by `schedule skip-to` to just before each run. Nothing is
patched in this process, so the same tests hold whether the functions run in-process in the
sandbox or in Lambda worker processes.

The tests run in file order on one sandbox: the schedule tests move its clock forward by days.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
import redis

from contracts import names
from orchestrator.cli import main
from orchestrator.demo import ARTIFACT_BUCKET, artifact
from orchestrator.sandbox.control import call as control
from orchestrator.sandbox.state import SandboxState
from tests.e2e.release_args import load_tolerant_checks

pytestmark = pytest.mark.slow
ENV = "staging"
SANDBOX_SCHEDULES = True  # the stage's schedules fire on this module's sandbox clock (conftest.py)


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
    # On demand through the schedule: its target called with its input.
    code, run = cli(capsys, "schedule", "run", "cost-check", "--env", ENV)
    assert code == 0, run
    assert run["schedule"].endswith(names.schedule_name(ENV, "cost-check")) and run["status"] == "succeeded"
    normal = run["result"]
    assert 0 < normal["total_usd"] < normal["daily_budget_usd"] and normal["anomaly"] is False, normal

    # Yesterday on the sandbox's clock cost 40 USD, all of it ElastiCache.
    yesterday = datetime.fromisoformat(control(sandbox.control_url, "/clock")["now"]).date() - timedelta(
        days=1
    )
    control(
        sandbox.control_url, "/costs", {"day": yesterday.isoformat(), "costs": {"Amazon ElastiCache": 40}}
    )
    try:
        code, run = cli(capsys, "ops", "run", "cost-check", "--env", ENV)
    finally:
        control(sandbox.control_url, "/costs", {"reset": True})

    assert code == 0, run
    result = run["result"]
    assert result["day"] == yesterday.isoformat()
    assert result["total_usd"] == 40 and result["budget_percent"] == 160 and result["anomaly"] is True
    assert result["by_service"][0]["service"] == "Amazon ElastiCache"


# Errors Lambda itself reports when the function's code could not run; any other error payload
# came from the function's own code.
RUNTIME_ERRORS = ("Runtime.", "Sandbox.")


def test_every_function_of_the_stage_answers_a_direct_invoke(sandbox: SandboxState) -> None:
    lam = aws(sandbox, "lambda")
    functions = sorted(
        f["FunctionName"] for p in lam.get_paginator("list_functions").paginate() for f in p["Functions"]
    )
    template_functions = {
        name
        for name in functions
        if name.startswith(f"{ENV}-") and not name.startswith(f"{ENV}-realtime-custom")
    }
    assert len(template_functions) >= 23, functions  # service, rotation, release tasks, ops tasks
    answers = {}
    for name in sorted(template_functions):
        # A probe no function acts on (the backup takes the day's snapshot, which it keeps if it exists).
        answer = lam.invoke(FunctionName=name, Payload=json.dumps({"probe": "e2e"}).encode())
        body = json.loads(answer["Payload"].read() or b"null")
        assert answer["StatusCode"] == 200 and answer["ExecutedVersion"] == "$LATEST", (name, answer)
        if answer.get("FunctionError"):
            assert isinstance(body, dict) and body.get("requestId"), (name, body)
            assert not str(body.get("errorType", "")).startswith(RUNTIME_ERRORS), (name, body)
            assert "docker" not in json.dumps(body).lower(), (name, body)
        answers[name] = body
    # The released functions also answer through their `live` alias, on the version it routes to.
    live = _live(sandbox)
    for key in ("authorizer", "connect", "disconnect", "messages", "fanout"):
        answer = lam.invoke(FunctionName=names.function_name(ENV, key), Qualifier="live", Payload=b"{}")
        body = json.loads(answer["Payload"].read() or b"null")
        assert answer["StatusCode"] == 200 and answer["ExecutedVersion"] == live[key], (key, answer)
        if answer.get("FunctionError"):
            assert not str(body.get("errorType", "")).startswith(RUNTIME_ERRORS), (key, body)
    # The template's environment reached them: the cost check names its stage and budget from it.
    cost = answers[names.ops_function_name(ENV, "cost-check")]
    assert cost["environment"] == ENV and cost["daily_budget_usd"] == 25.0, cost


def _schedule_keys() -> list[str]:
    return ["backup", "cost-check", "dr-drill"]


def _operations_queue(sandbox: SandboxState) -> str:
    """A queue subscribed to the operations topic: the notices the tasks publish land there."""
    sns, sqs = aws(sandbox, "sns"), aws(sandbox, "sqs")
    topic = next(
        t["TopicArn"]
        for t in sns.list_topics()["Topics"]
        if t["TopicArn"].endswith(f":{names.topic_name(ENV, 'operations')}")
    )
    url = sqs.create_queue(QueueName="e2e-operations-notices")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


def _notices(sandbox: SandboxState, url: str) -> list[str]:
    sqs = aws(sandbox, "sqs")
    out = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not batch:
            return out
        for message in batch:
            out.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_every_schedule_of_the_template_is_deployed(
    sandbox: SandboxState, capsys: pytest.CaptureFixture[str]
) -> None:
    template = json.loads(_template_path().read_text())
    expected = {
        props["Properties"]["Name"]
        for props in template["Resources"].values()
        if props["Type"] == "AWS::Scheduler::Schedule"
    }
    code, listing = cli(capsys, "schedule", "list", "--env", ENV)
    assert code == 0, listing
    rows = {row["name"]: row for row in listing["schedules"]}
    assert set(rows) == expected == {names.schedule_name(ENV, key) for key in _schedule_keys()}
    for row in rows.values():
        assert (
            row["state"] == "ENABLED"
            and row["next_run"]
            and row["dead_letter_queue"].endswith(names.schedule_dlq_name(ENV))
        )
        assert row["retry_attempts"] is not None and row["max_event_age_seconds"] is not None


def _template_path() -> Any:
    from orchestrator.sandbox.daemon import staging_template

    return staging_template()


@pytest.mark.parametrize("key", _schedule_keys())
def test_each_schedule_fires_on_the_compressed_clock_and_its_target_succeeds(
    sandbox: SandboxState, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    notices = _operations_queue(sandbox) if key == "cost-check" else None
    if key == "cost-check":
        # The day the scheduled check will judge (the day before its run) cost far over budget.
        due = datetime.fromisoformat(_next_run(sandbox, key))
        control(
            sandbox.control_url,
            "/costs",
            {"day": (due.date() - timedelta(days=1)).isoformat(), "costs": {"Amazon ElastiCache": 31.5}},
        )
    try:
        _fires_and_succeeds(sandbox, capsys, key, notices)
    finally:
        # After the check has run: the scheduler invokes it asynchronously, as Scheduler does.
        control(sandbox.control_url, "/costs", {"reset": True})


def _fires_and_succeeds(
    sandbox: SandboxState, capsys: pytest.CaptureFixture[str], key: str, notices: str | None
) -> None:
    code, fired = cli(capsys, "schedule", "skip-to", key, "--env", ENV, "--wait", "--timeout", "240")
    assert code == 0, fired
    run = fired["run"]
    # Fired by the scheduler on its own, as the schedule's role, at its time on the sandbox clock.
    assert run["outcome"] == "delivered" and run["trigger"] == "clock" and run["attempts"] == 1, run
    due = datetime.fromisoformat(run["scheduled_for"])
    assert 0 <= (datetime.fromisoformat(run["fired_at"]) - due).total_seconds() < 60
    if key == "backup":
        snapshot = f"{names.cache_replication_group_id(ENV)}-{due:%Y-%m-%d}"
        s3 = aws(sandbox, "s3")
        bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "backups" in b["Name"])
        assert _eventually(lambda: _has(s3, bucket, f"exports/{snapshot}.json"), timeout=60), snapshot
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"manifests/{snapshot}.json")["Body"].read())
        taken = datetime.fromisoformat(manifest["taken_at"].replace("Z", "+00:00"))
        # Taken by this run, on the sandbox's clock. The clock started after the day's 07:00 run
        # (sandbox_clock.py), so this module's manual backup fell on the day before: one snapshot
        # a day would otherwise keep that one.
        assert 0 <= (taken - due).total_seconds() < 600, manifest["taken_at"]
        assert _eventually(lambda: _has(s3, bucket, f"{snapshot}-0001.rdb"))
        rdb = s3.get_object(Bucket=bucket, Key=f"{snapshot}-0001.rdb")["Body"].read()
        assert rdb.startswith(b"REDIS") and len(rdb) > 1000  # the server's data, not an empty file
    elif key == "cost-check":
        assert notices is not None
        seen: list[dict[str, Any]] = []

        def anomaly_notice() -> list[dict[str, Any]]:
            seen.extend(json.loads(body) for body in _notices(sandbox, notices))
            return [n for n in seen if n.get("kind") == "cost anomaly"]

        [notice] = _eventually(anomaly_notice, timeout=90) or [None]
        assert notice is not None, seen
        judged = (due.date() - timedelta(days=1)).isoformat()
        assert notice["detail"]["day"] == judged and notice["detail"]["anomaly"] is True, notice
        assert notice["detail"]["total_usd"] == 31.5 and notice["detail"]["budget_percent"] == 126, notice
    else:
        assert fired["status"] == "SUCCEEDED", fired
        record = fired["output"]["record"]
        assert record["outcome"] == "SUCCEEDED" and record["verification"]["passed"], record
        assert record["verification"]["restored_keys"] == record["verification"]["expected_keys"] > 0
        assert record["temporary_group_deleted"] and record["rto_seconds"] > 0 and record["rpo_seconds"] > 0
        _stage_as_it_was(sandbox, record["temporary_group"])


def _next_run(sandbox: SandboxState, key: str) -> str:
    view = control(sandbox.control_url, "/schedules")
    return str(view["next"][f"{names.schedule_group_name(ENV)}/{names.schedule_name(ENV, key)}"])


def _has(s3: Any, bucket: str, key: str) -> bool:
    return any(o["Key"] == key for o in s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", []))


def _stage_as_it_was(sandbox: SandboxState, temporary_group: str | None = None) -> None:
    groups = {
        g["ReplicationGroupId"]: g["Status"]
        for g in aws(sandbox, "elasticache").describe_replication_groups()["ReplicationGroups"]
    }
    assert groups[names.cache_replication_group_id(ENV)] == "available"
    if temporary_group:
        assert _eventually(
            lambda: (
                temporary_group
                not in {
                    g["ReplicationGroupId"]
                    for g in aws(sandbox, "elasticache").describe_replication_groups()["ReplicationGroups"]
                }
            )
        ), groups
    assert lock(sandbox) is None


# -- the lock: one release or drill at a time ---------------------------------------------------


@pytest.fixture(scope="module")
def artifacts(sandbox: SandboxState) -> dict[str, tuple[str, str]]:
    s3 = aws(sandbox, "s3")
    if ARTIFACT_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(
            Bucket=ARTIFACT_BUCKET, CreateBucketConfiguration={"LocationConstraint": sandbox.region}
        )
    out = {}
    for version in ("3.0.0", "3.1.0"):
        body = artifact(version)
        key = f"service/service-{version}.zip"
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=body)
        out[version] = (f"s3://{ARTIFACT_BUCKET}/{key}", hashlib.sha256(body).hexdigest())
    return out


def _release(artifacts: dict[str, tuple[str, str]], version: str, release_id: str, *extra: str) -> list[str]:
    uri, sha = artifacts[version]
    return [
        "--sandbox",
        "release",
        "start",
        "--env",
        ENV,
        "--version",
        version,
        "--artifact",
        uri,
        "--sha256",
        sha,
        "--steps",
        "100",
        "--bake",
        "60",
        "--release-id",
        release_id,
        "--min-green-invocations",
        "0",
        "--json",
        *load_tolerant_checks(),
        *extra,
    ]


def _live(sandbox: SandboxState) -> dict[str, str]:
    lam = aws(sandbox, "lambda")
    return {
        key: lam.get_alias(FunctionName=names.function_name(ENV, key), Name="live")["FunctionVersion"]
        for key in ("authorizer", "connect", "disconnect", "messages", "fanout")
    }


def _task_started(sandbox: SandboxState, arn: str, state: str, timeout: float = 120) -> bool:
    sfn = aws(sandbox, "stepfunctions")

    def started() -> bool:
        events = sfn.get_execution_history(executionArn=arn)["events"]
        entered = [
            i for i, e in enumerate(events) if e.get("stateEnteredEventDetails", {}).get("name") == state
        ]
        return bool(entered) and any(e["type"] == "TaskStarted" for e in events[entered[-1] :])

    return bool(_eventually(started, timeout=timeout))


def test_a_drill_while_a_release_holds_the_lock_fails_as_designed(
    sandbox: SandboxState, artifacts: dict[str, tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_release(artifacts, "3.0.0", "e2e-lock-release", "--approval"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    release_arn = json.loads(captured.out.splitlines()[-1])["execution_arn"]
    assert _task_started(sandbox, release_arn, "ApprovalGate"), "the release never reached its approval gate"
    held = lock(sandbox)
    assert held is not None and held["release_id"]["S"] == "e2e-lock-release"

    code, drill = cli(capsys, "drill", "start", "--env", ENV, "--drill-id", "e2e-locked-out", "--wait")

    assert code == 1 and drill["status"] == "FAILED" and drill["error"] == "ReleaseInProgress", drill
    assert lock(sandbox)["release_id"]["S"] == "e2e-lock-release"  # the release keeps its lock
    groups = {
        g["ReplicationGroupId"]
        for g in aws(sandbox, "elasticache").describe_replication_groups()["ReplicationGroups"]
    }
    assert not any("locked-out" in g for g in groups), groups  # nothing was restored

    assert main(["--sandbox", "release", "reject", "e2e-lock-release", "--env", ENV, "--reason", "e2e"]) == 0
    capsys.readouterr()
    assert _eventually(
        lambda: (
            aws(sandbox, "stepfunctions").describe_execution(executionArn=release_arn)["status"] != "RUNNING"
        ),
        timeout=120,
    )
    assert _eventually(lambda: lock(sandbox) is None)


def test_a_release_while_a_drill_holds_the_lock_fails_as_designed(
    sandbox: SandboxState, artifacts: dict[str, tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    before = _live(sandbox)
    code, started = cli(capsys, "drill", "start", "--env", ENV, "--drill-id", "e2e-lock-drill")
    assert code == 0, started
    held = _eventually(lambda: lock(sandbox), timeout=60)
    assert held is not None and held["release_id"]["S"] == "e2e-lock-drill", held

    code = main(_release(artifacts, "3.1.0", "e2e-locked-release", "--wait"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]

    assert code == 1, lines[-1]
    assert lines[-1]["status"] == "FAILED" and lines[-1].get("error") == "ReleaseInProgress", lines[-1]
    assert _live(sandbox) == before  # nothing moved

    code, drill = cli(capsys, "drill", "status", "e2e-lock-drill", "--env", ENV)
    assert _eventually(
        lambda: cli(capsys, "drill", "status", "e2e-lock-drill", "--env", ENV)[1]["status"] != "RUNNING",
        timeout=180,
    )
    code, drill = cli(capsys, "drill", "status", "e2e-lock-drill", "--env", ENV)
    assert code == 0 and drill["status"] == "SUCCEEDED", drill
    _stage_as_it_was(sandbox, drill["record"]["temporary_group"])


def _eventually(check: Any, timeout: float = 10.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)
