"""The release commands against a moto server running a small release-shaped state machine."""

from __future__ import annotations

import json
import time

import pytest

from orchestrator.cli import main

from .conftest import ENV, client

SHA = "b" * 64


def _start(url: str, capsys: pytest.CaptureFixture[str], release_id: str, *extra: str) -> str:
    code = main(
        [
            "--endpoint-url",
            url,
            "release",
            "start",
            "--env",
            ENV,
            "--version",
            "1.2.0",
            "--artifact",
            "s3://artifacts-bucket/service-1.2.0.zip",
            "--sha256",
            SHA,
            "--steps",
            "100",
            "--bake",
            "0",
            "--release-id",
            release_id,
            "--requested-by",
            "tester",
            "--json",
            *extra,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    started = json.loads(captured.out)
    assert started["release_id"] == release_id
    assert started["execution_arn"].endswith(f":execution:{ENV}-release:{release_id}")
    assert started["console_url"] is None  # an endpoint (sandbox) has no console
    return str(started["execution_arn"])


def _watch_json(url: str, capsys: pytest.CaptureFixture[str], ref: str) -> tuple[int, list[dict]]:
    code = main(
        ["--endpoint-url", url, "release", "watch", ref, "--env", ENV, "--json", "--interval", "0.05"]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    return code, [json.loads(line) for line in lines]


STATE_KEYS = {"type", "state", "state_type", "status", "visit", "timestamp", "error", "cause"}


def _check_schema(records: list[dict]) -> None:
    for record in records:
        kind = record["type"]
        if kind == "state":
            assert set(record) == STATE_KEYS
            assert record["status"] in {"running", "succeeded", "caught", "failed", "aborted"}
        elif kind == "traffic":
            assert set(record) == {"type", "timestamp", "green_version", "green_percent", "functions"}
            for split in record["functions"].values():
                assert set(split) == {"version", "weights"}
                assert abs(sum(split["weights"].values()) - 1.0) < 1e-6
        elif kind == "warning":
            assert set(record) == {"type", "message", "timestamp"}
        elif kind == "alarm":
            assert set(record) == {"type", "name", "state", "reason", "timestamp"}
        else:
            assert kind == "execution"
            assert set(record) == {
                "type",
                "execution_arn",
                "status",
                "error",
                "cause",
                "timestamp",
                "exit_code",
            }
    assert records[-1]["type"] == "execution"
    assert sum(r["type"] == "execution" for r in records) == 1


def test_healthy_release_watch_exits_0(
    moto_url: str, stage: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = _start(moto_url, capsys, "healthy-1")
    code, records = _watch_json(moto_url, capsys, "healthy-1")  # by release id
    _check_schema(records)
    assert code == 0
    assert records[-1] == {**records[-1], "status": "SUCCEEDED", "exit_code": 0, "execution_arn": arn}
    done = [r["state"] for r in records if r["type"] == "state" and r["status"] == "succeeded"]
    assert done == ["ValidateRequest", "NeedsApproval", "Bake", "CheckAlarms", "Finalize", "Released"]
    traffic = next(r for r in records if r["type"] == "traffic")
    assert traffic["green_version"] == "2" and traffic["green_percent"] == 10.0
    assert {r["name"] for r in records if r["type"] == "alarm"} == {
        f"{ENV}-release-guard-errors",
        f"{ENV}-release-health",
    }


def test_faulty_release_rolls_back_and_watch_exits_1(
    moto_url: str, stage: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    _start(moto_url, capsys, "faulty-1", "--config", "FAULT_ERROR_RATE=0.5")
    code, records = _watch_json(moto_url, capsys, "faulty-1")
    _check_schema(records)
    assert code == 1
    assert records[-1]["status"] == "FAILED" and records[-1]["error"] == "ReleaseRolledBack"
    assert ("ReleaseRolledBack", "failed") in [
        (r["state"], r["status"]) for r in records if r["type"] == "state"
    ]


def _wait_for_approval_gate(url: str, arn: str) -> None:
    sfn = client("stepfunctions", url)
    for _ in range(200):
        events = sfn.get_execution_history(executionArn=arn)["events"]
        if any(e["type"] == "TaskStarted" for e in events):
            return
        time.sleep(0.02)
    raise AssertionError("the execution never reached its approval gate")


def test_approve(moto_url: str, stage: dict, capsys: pytest.CaptureFixture[str]) -> None:
    arn = _start(moto_url, capsys, "approve-1", "--approval")
    _wait_for_approval_gate(moto_url, arn)
    assert main(["--endpoint-url", moto_url, "release", "approve", "approve-1", "--env", ENV]) == 0
    assert "continues past AwaitApproval" in capsys.readouterr().out
    code, records = _watch_json(moto_url, capsys, arn)
    assert code == 0
    approval = [r for r in records if r["type"] == "state" and r["state"] == "AwaitApproval"]
    assert approval[-1]["status"] == "succeeded"
    # Approving again is refused: nothing is waiting any more.
    assert main(["--endpoint-url", moto_url, "release", "approve", "approve-1", "--env", ENV]) == 3
    assert "not waiting for approval" in capsys.readouterr().err


def test_reject_is_caught_and_rolls_back(
    moto_url: str, stage: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = _start(moto_url, capsys, "reject-1", "--approval")
    _wait_for_approval_gate(moto_url, arn)
    assert (
        main(["--endpoint-url", moto_url, "release", "reject", arn, "--env", ENV, "--reason", "not today"])
        == 0
    )
    capsys.readouterr()
    code, records = _watch_json(moto_url, capsys, arn)
    assert code == 1
    statuses = {(r["state"], r["status"]) for r in records if r["type"] == "state"}
    assert ("AwaitApproval", "caught") in statuses
    assert ("Rollback", "succeeded") in statuses


def test_status_json(moto_url: str, stage: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--endpoint-url", moto_url, "release", "status", "--env", ENV, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["environment"] == ENV
    assert report["live"][f"{ENV}-realtime-fanout"] == {"version": "1", "weights": {"1": 0.9, "2": 0.1}}
    assert set(report["alarms"]) == {f"{ENV}-release-guard-errors", f"{ENV}-release-health"}
    assert report["latest_execution"]["status"] in {"RUNNING", "SUCCEEDED", "FAILED"}


def test_status_human(moto_url: str, stage: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--endpoint-url", moto_url, "release", "status", "--env", ENV]) == 0
    text = capsys.readouterr().out
    assert "v1 90%, v2 10%" in text and f"{ENV}-release-health" in text


def test_history_reads_release_records(
    moto_url: str, stage: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.aws import Names

    ddb = client("dynamodb", moto_url)
    table = Names(ENV).release_table
    for index, status in enumerate(["SUCCEEDED", "ROLLED_BACK"]):
        ddb.put_item(
            TableName=table,
            Item={
                "pk": {"S": f"release#r{index}"},
                "sk": {"S": "record"},
                "gsi1pk": {"S": f"env#{ENV}"},
                "gsi1sk": {"S": f"2026-01-0{index + 1}T00:00:00Z"},
                "release_id": {"S": f"r{index}"},
                "version": {"S": f"1.{index}.0"},
                "status": {"S": status},
                "requested_by": {"S": "tester"},
                "started_at": {"S": f"2026-01-0{index + 1}T00:00:00Z"},
                "steps": {"N": "3"},
            },
        )
    ddb.put_item(
        TableName=table, Item={"pk": {"S": f"lock#{ENV}"}, "sk": {"S": "lock"}, "release_id": {"S": "r9"}}
    )
    assert (
        main(["--endpoint-url", moto_url, "release", "history", "--env", ENV, "--json", "--limit", "1"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {
            "release_id": "r1",
            "version": "1.1.0",
            "status": "ROLLED_BACK",
            "requested_by": "tester",
            "started_at": "2026-01-02T00:00:00Z",
            "steps": 3,
        }
    ]
    assert main(["--endpoint-url", moto_url, "release", "history", "--env", ENV]) == 0
    text = capsys.readouterr().out
    assert "r0" in text and "ROLLED_BACK" in text


def test_rollback_sets_the_guard_alarm(
    moto_url: str, stage: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing running: exit 1, and no alarm is touched.
    assert main(["--endpoint-url", moto_url, "release", "rollback", "--env", ENV]) == 1
    assert "nothing to roll back" in capsys.readouterr().err
    arn = _start(moto_url, capsys, "rollback-1", "--approval")
    _wait_for_approval_gate(moto_url, arn)
    assert (
        main(
            [
                "--endpoint-url",
                moto_url,
                "release",
                "rollback",
                "--env",
                ENV,
                "--reason",
                "p99 too high",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["execution_arn"] == arn and result["alarm"] == f"{ENV}-release-health"
    alarm = client("cloudwatch", moto_url).describe_alarms(AlarmNames=[result["alarm"]])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM" and alarm["StateReason"].startswith("p99 too high (by ")
    client("stepfunctions", moto_url).stop_execution(executionArn=arn)


@pytest.mark.parametrize("guard_firing", [False, True])
def test_a_done_rollback_puts_its_alarm_back_unless_a_guard_fires(
    moto_url: str, stage: dict, guard_firing: bool
) -> None:
    # A composite set by SetAlarmState keeps its state until a child changes: left in ALARM it
    # would fail the next release's first CheckAlarms. `release rollback --wait` calls this once
    # the execution it stopped has ended.
    from orchestrator.aws import Aws, Names, Target
    from orchestrator.cli.release import _reset_rollback_alarm

    cloudwatch = client("cloudwatch", moto_url)
    target = Names(ENV)
    health, guard = f"{target.alarm_prefix}health", f"{target.alarm_prefix}guard-errors"
    cloudwatch.set_alarm_state(AlarmName=health, StateValue="ALARM", StateReason="manual rollback")
    cloudwatch.set_alarm_state(
        AlarmName=guard, StateValue="ALARM" if guard_firing else "OK", StateReason="the guard's own state"
    )
    aws = Aws(Target(region="eu-west-1", endpoint_url=moto_url))
    assert _reset_rollback_alarm(aws, target, health, [guard]) is (not guard_firing)
    state = cloudwatch.describe_alarms(AlarmNames=[health])["MetricAlarms"][0]["StateValue"]
    assert state == ("ALARM" if guard_firing else "OK")
    for name in (health, guard):
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test done")


def test_the_lock_holder_is_what_rollback_wait_waits_on(moto_url: str, stage: dict) -> None:
    # The alarm-rollback function stops the execution before it drains and releases the lock:
    # `release rollback --wait` returns once the lock is free of the release it rolled back.
    from orchestrator.aws import Aws, Names, Target, lock_holder

    target = Names(ENV)
    aws = Aws(Target(region="eu-west-1", endpoint_url=moto_url))
    ddb = client("dynamodb", moto_url)
    key = {"pk": {"S": f"lock#{ENV}"}, "sk": {"S": "lock"}}
    ddb.delete_item(TableName=target.release_table, Key=key)
    assert lock_holder(aws, target) is None
    ddb.put_item(TableName=target.release_table, Item={**key, "release_id": {"S": "held-1"}})
    assert lock_holder(aws, target) == "held-1"
    ddb.delete_item(TableName=target.release_table, Key=key)


def test_redrive_not_in_moto_is_one_clear_line(
    moto_url: str, stage: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--endpoint-url", moto_url, "release", "redrive", "healthy-1", "--env", ENV]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "redrive_execution" in err[0]


def test_render_execution_report(
    moto_url: str, stage: dict, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    out = tmp_path / "report.html"
    arn = _start(moto_url, capsys, "render-1", "--config", "FAULT_ERROR_RATE=0.1")
    assert _watch_json(moto_url, capsys, arn)[0] == 1
    assert main(["--endpoint-url", moto_url, "render", "--execution", arn, "--out", str(out)]) == 0
    html = out.read_text()
    assert "ReleaseRolledBack" in html and "<svg" in html and "<script" not in html
    assert 'class="state failed" data-state="ReleaseRolledBack"' in html
    assert 'class="state pending" data-state="Finalize"' in html


def test_a_request_file_alone_starts_a_release(moto_url: str, stage: dict, tmp_path, capsys) -> None:
    path = tmp_path / "req.json"
    path.write_text(
        json.dumps(
            {
                "version": "1.7.0",
                "artifact": {"bucket": "artifacts-bucket", "key": "service/svc.zip", "sha256": SHA},
                "strategy": {"steps": [{"percent": 100, "bake_seconds": 0}]},
                "release_id": "from-file",
                "dry_run": True,
            }
        )
    )
    code = main(
        ["--endpoint-url", moto_url, "release", "start", "--env", ENV, "--request-file", str(path), "--json"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    arn = json.loads(captured.out)["execution_arn"]
    sent = json.loads(client("stepfunctions", moto_url).describe_execution(executionArn=arn)["input"])
    assert sent["version"] == "1.7.0" and sent["release_id"] == "from-file" and sent["dry_run"] is True
    assert sent["artifact"]["sha256"] == SHA
    assert sent["strategy"] == {"steps": [{"percent": 100, "bake_seconds": 0}]}


def test_options_override_the_request_file(moto_url: str, stage: dict, tmp_path, capsys) -> None:
    path = tmp_path / "req.json"
    path.write_text(
        json.dumps(
            {
                "version": "1.7.0",
                "artifact": {"bucket": "artifacts-bucket", "key": "service/svc.zip", "sha256": SHA},
                "release_id": "from-file-2",
                "dry_run": True,
            }
        )
    )
    code = main(
        [
            "--endpoint-url",
            moto_url,
            "release",
            "start",
            "--env",
            ENV,
            "--request-file",
            str(path),
            "--version",
            "1.8.0",
            "--no-dry-run",
            "--steps",
            "100",
            "--bake",
            "0",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    arn = json.loads(captured.out)["execution_arn"]
    sent = json.loads(client("stepfunctions", moto_url).describe_execution(executionArn=arn)["input"])
    assert sent["version"] == "1.8.0" and sent["dry_run"] is False and sent["release_id"] == "from-file-2"
