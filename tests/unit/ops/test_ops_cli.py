"""`orchestrator cost report|estimate` and `drill start|status` against moto, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
import requests

from orchestrator.cli import main
from orchestrator.costs import estimate, load_pricing

TEMPLATE = {
    "Resources": {
        "Nat": {"Type": "AWS::EC2::NatGateway", "Properties": {}},
        "Eip": {"Type": "AWS::EC2::EIP", "Properties": {}},
        "Sqs": {
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {"VpcEndpointType": "Interface", "SubnetIds": ["a", "b"]},
        },
        "S3": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {"VpcEndpointType": "Gateway"}},
        "Cache": {
            "Type": "AWS::ElastiCache::ReplicationGroup",
            "Properties": {
                "CacheNodeType": "cache.t4g.small",
                "NumNodeGroups": 1,
                "ReplicasPerNodeGroup": 1,
                "Engine": "valkey",
            },
        },
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"MemorySize": 1024, "Architectures": ["arm64"]},
        },
        "Live": {
            "Type": "AWS::Lambda::Alias",
            "Properties": {
                "FunctionName": {"Ref": "Fn"},
                "ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 2},
            },
        },
    }
}


def test_estimate_prices_each_fixed_cost_item() -> None:
    prices = load_pricing()
    result = estimate(
        TEMPLATE,
        environment="staging",
        region="eu-west-1",
        release_steps=3,
        releases_per_month=10,
        drills_per_month=4,
        pricing=prices,
    )
    lines = {line.item.split(" (")[0]: line for line in result.lines}
    assert lines["NAT gateway hours"].monthly == round(730 * prices["nat_gateway_hour"], 2)
    assert lines["Interface endpoint ENI hours"].quantity == 2
    cache = lines["Cache nodes cache.t4g.small"]
    assert cache.quantity == 2 and cache.unit_price == pytest.approx(
        prices["cache_node_hour"]["cache.t4g.small"] * 0.8
    )
    pc = next(line for line in result.lines if line.item.startswith("Provisioned concurrency Live"))
    assert pc.monthly == round(2 * 1.0 * prices["lambda_provisioned_gb_second"]["arm64"] * 730 * 3600, 2)
    transitions = next(line for line in result.lines if line.item.startswith("Step Functions"))
    # 24 transitions per 3-step release (benchmarks/bench_release.py), 60 allowed per drill.
    assert transitions.quantity == 10 * 24 + 4 * 60
    assert result.total == round(sum(line.monthly for line in result.lines), 2)


def test_cost_estimate_command_reads_the_assembly(tmp_path: Path, capsys) -> None:
    (tmp_path / "assembly-Staging").mkdir()
    (tmp_path / "assembly-Staging" / "Stack.template.json").write_text(json.dumps(TEMPLATE))
    assert main(["cost", "estimate", "--env", "staging", "--cdk-out", str(tmp_path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["region"] == "eu-west-1" and payload["prices_as_of"] and payload["monthly_usd"] > 0


def test_cost_estimate_without_synth_names_the_fix(tmp_path: Path, capsys) -> None:
    assert main(["cost", "estimate", "--env", "staging", "--cdk-out", str(tmp_path)]) == 2
    assert "run `make synth` first" in capsys.readouterr().err


@pytest.fixture
def moto(monkeypatch):
    from moto import mock_aws

    with mock_aws():
        yield


def test_cost_report_exit_code_follows_the_anomaly(moto, capsys) -> None:
    day = {
        "TimePeriod": {"Start": "2026-03-09", "End": "2026-03-10"},
        "Estimated": False,
        "Groups": [
            {"Keys": ["Amazon ElastiCache"], "Metrics": {"UnblendedCost": {"Amount": "40", "Unit": "USD"}}}
        ],
    }
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results",
        json={"results": [{"ResultsByTime": [day]}]},
        timeout=5,
    )
    assert main(["cost", "report", "--env", "staging", "--day", "2026-03-09"]) == 1
    text = capsys.readouterr().out
    assert "40.00 USD = 160% of the 25.00 USD budget" in text and "ANOMALY" in text


def test_drill_start_and_status(moto, capsys) -> None:
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    sfn.create_state_machine(
        name="staging-dr-drill",
        roleArn="arn:aws:iam::123456789012:role/x",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )
    assert main(["drill", "start", "--env", "staging", "--drill-id", "d-1", "--no-failover", "--json"]) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["drill_id"] == "d-1"
    history = sfn.list_executions(
        stateMachineArn=started["execution_arn"].replace(":execution:", ":stateMachine:").rsplit(":", 1)[0]
    )["executions"]
    assert [e["name"] for e in history] == ["d-1"]
    request = json.loads(sfn.describe_execution(executionArn=started["execution_arn"])["input"])
    assert request["type"] == "snapshot-restore" and request["failover"] is False
    assert main(["dr-drill", "status", "--env", "staging", "--json"]) in (0, 1)
    assert json.loads(capsys.readouterr().out)["drill_id"] == "d-1"


@pytest.mark.parametrize(
    "argv",
    [
        ["drill", "start", "--env", "production", "--failover"],
        ["drill", "start", "--env", "staging", "--type", "chaos"],
        ["drill", "start", "--env", "qa"],
        ["cost", "report", "--env", "staging", "--day", "yesterday"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, capsys) -> None:
    assert main(argv) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _schedules() -> str:
    sfn = boto3.client("stepfunctions", region_name="eu-west-1")
    machine = sfn.create_state_machine(
        name="staging-dr-drill",
        roleArn="arn:aws:iam::123456789012:role/x",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    scheduler = boto3.client("scheduler", region_name="eu-west-1")
    scheduler.create_schedule_group(Name="staging-realtime-operations")
    scheduler.create_schedule(
        Name="staging-realtime-dr-drill",
        GroupName="staging-realtime-operations",
        ScheduleExpression="cron(0 9 ? * WED *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": machine,
            "RoleArn": "arn:aws:iam::123456789012:role/s",
            "Input": json.dumps({"type": "snapshot-restore", "requested_by": "schedule"}),
        },
    )
    return str(machine)


def test_ops_schedules_and_run_fire_the_schedule_target(moto, capsys) -> None:
    machine = _schedules()
    assert main(["ops", "schedules", "--env", "staging", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["schedules"]
    assert row["name"] == "staging-realtime-dr-drill" and row["target"] == machine
    assert main(["ops", "run", "dr-drill", "--env", "staging", "--json"]) == 0
    started = json.loads(capsys.readouterr().out)
    assert (
        started["status"] == "started"
        and started["schedule"] == "staging-realtime-operations/staging-realtime-dr-drill"
    )
    request = json.loads(
        boto3.client("stepfunctions", region_name="eu-west-1").describe_execution(
            executionArn=started["execution_arn"]
        )["input"]
    )
    assert request == {"type": "snapshot-restore", "requested_by": "schedule"}  # the schedule's own input


def test_ops_run_names_what_is_wrong(moto, capsys) -> None:
    assert main(["ops", "run", "chaos", "--env", "staging"]) == 2
    assert "is not one of backup, cost-check, dr-drill" in capsys.readouterr().err
    assert main(["ops", "run", "backup", "--env", "staging"]) == 3  # no schedule deployed
    assert "scheduler.get_schedule" in capsys.readouterr().err
