"""The CLI against the running sandbox: start, watch, approve, roll back, status, history."""

from __future__ import annotations

import hashlib
import json
import time

import boto3
import pytest

from orchestrator.cli import main
from orchestrator.demo import ARTIFACT_BUCKET, artifact
from orchestrator.sandbox.state import SandboxState
from tests.e2e.release_args import load_tolerant_checks

pytestmark = pytest.mark.slow
ENV = "staging"


def aws(state: SandboxState, service: str):  # noqa: ANN201
    return boto3.client(service, endpoint_url=state.moto_url, region_name=state.region)


@pytest.fixture(scope="module")
def artifacts(sandbox: SandboxState) -> dict[str, tuple[str, str]]:
    # The sandbox made the stage's artifact bucket at start-up (the stack does not create it).
    assert sandbox.artifact_bucket == ARTIFACT_BUCKET
    s3 = aws(sandbox, "s3")
    s3.head_bucket(Bucket=ARTIFACT_BUCKET)
    out = {}
    for version in ("2.0.0", "2.1.0", "2.2.0"):
        body = artifact(version)
        key = f"service/service-{version}.zip"
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=body)
        out[version] = (f"s3://{ARTIFACT_BUCKET}/{key}", hashlib.sha256(body).hexdigest())
    return out


def start(capsys, artifacts, version: str, release_id: str, *extra: str) -> str:
    uri, sha = artifacts[version]
    code = main(
        [
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
            "50,100",
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
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)["execution_arn"]


def watch(capsys, ref: str) -> tuple[int, list[dict]]:
    code = main(["--sandbox", "release", "watch", ref, "--env", ENV, "--json", "--interval", "0.1"])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def live_versions(state: SandboxState) -> set[tuple[str, str]]:
    lam = aws(state, "lambda")
    out = set()
    for key in ("authorizer", "connect", "disconnect", "messages", "fanout"):
        alias = lam.get_alias(FunctionName=f"{ENV}-realtime-{key}", Name="live")
        assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights"), (
            "live must serve one version"
        )
        out.add((key, alias["FunctionVersion"]))
    return out


def wait_for_state(state: SandboxState, arn: str, name: str, timeout: float = 60) -> None:
    sfn = aws(state, "stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = sfn.get_execution_history(executionArn=arn)["events"]
        if any(e.get("stateEnteredEventDetails", {}).get("name") == name for e in events):
            return
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            # Ended before the state: say how, so a failure names its cause.
            raise AssertionError(
                f"{arn} ended {execution['status']} before entering {name}: "
                f"{execution.get('error')}: {execution.get('cause')}; states: {entered_states(events)}"
            )
        time.sleep(0.05)
    raise AssertionError(f"{arn} never entered {name} in {timeout:g} s; states: {entered_states(events)}")


def entered_states(events: list[dict]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def wait_for_task_started(state: SandboxState, arn: str, after_state: str, timeout: float = 60) -> None:
    """Until the task of `after_state` has started (for a gate: its token is out)."""
    sfn = aws(state, "stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = sfn.get_execution_history(executionArn=arn)["events"]
        entered = [
            i
            for i, e in enumerate(events)
            if e.get("stateEnteredEventDetails", {}).get("name") == after_state
        ]
        if entered and any(e["type"] == "TaskStarted" for e in events[entered[-1] :]):
            return
        time.sleep(0.05)
    raise AssertionError(f"{arn}: the task of {after_state} never started")


def test_sandbox_status(sandbox: SandboxState, capsys) -> None:
    assert main(["sandbox", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["running"] is True and status["moto_url"] == sandbox.moto_url
    assert status["state_machines"], "the staging stage deploys its state machines"


def test_healthy_release_start_wait_and_history(sandbox: SandboxState, artifacts, capsys) -> None:
    uri, sha = artifacts["2.0.0"]
    code = main(
        [
            "--sandbox",
            "release",
            "start",
            "--env",
            ENV,
            "--version",
            "2.0.0",
            "--artifact",
            uri,
            "--sha256",
            sha,
            "--steps",
            "50,100",
            "--bake",
            "60",
            "--release-id",
            "e2e-healthy",
            "--min-green-invocations",
            "0",
            "--wait",
            "--json",
            *load_tolerant_checks(),
        ]
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # The whole cause: pytest would cut the record short just where the reason is.
    assert code == 0, f"{lines[-1].get('error')}: {lines[-1].get('cause')}"
    assert lines[0]["release_id"] == "e2e-healthy" and lines[-1]["type"] == "execution"
    assert lines[-1]["status"] == "SUCCEEDED"
    assert len(live_versions(sandbox)) == 5
    assert main(["--sandbox", "release", "history", "--env", ENV, "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert history[0]["release_id"] == "e2e-healthy" and history[0]["status"] == "SUCCEEDED"


def test_first_release_by_hand_from_a_local_bundle(sandbox: SandboxState, tmp_path, capsys) -> None:
    """As the README's first manual release: build the bundle, then release the local zip."""
    from scripts.build_bundle import build

    source = tmp_path / "src" / "service"
    source.mkdir(parents=True)
    (source / "VERSION").write_text("local bundle\n")
    manifest = build(tmp_path / "src", tmp_path / "dist", "0.9.0")
    bundle = tmp_path / "dist" / manifest.zip_file  # dist/service-<hash>.zip
    code = main(
        [
            "--sandbox",
            "release",
            "start",
            "--env",
            ENV,
            "--artifact",
            str(bundle),
            "--steps",
            "100",
            "--bake",
            "0",
            "--release-id",
            "e2e-local-bundle",
            "--min-green-invocations",
            "0",
            "--wait",
            "--json",
            *load_tolerant_checks(),
        ]
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # The whole cause: pytest would cut the record short just where the reason is.
    assert code == 0, f"{lines[-1].get('error')}: {lines[-1].get('cause')}"
    assert lines[-1]["type"] == "execution" and lines[-1]["status"] == "SUCCEEDED"
    head = aws(sandbox, "s3").head_object(Bucket=sandbox.artifact_bucket, Key=manifest.key)
    assert head["Metadata"]["sha256"] == manifest.sha256  # where scripts/build_bundle.py would put it
    lam = aws(sandbox, "lambda")
    live = lam.get_alias(FunctionName=f"{ENV}-realtime-messages", Name="live")
    code_sha = lam.get_function_configuration(
        FunctionName=f"{ENV}-realtime-messages", Qualifier=live["FunctionVersion"]
    )["CodeSha256"]
    assert code_sha == manifest.code_sha256  # live runs the bundle that was on disk
    assert main(["--sandbox", "release", "history", "--env", ENV, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)[0]
    assert record["release_id"] == "e2e-local-bundle" and record["version"] == manifest.version


@pytest.mark.parametrize("stage", ["live", "preview"])
def test_synthetic_checks_from_the_cli(sandbox: SandboxState, stage: str, capsys) -> None:
    code = main(["--sandbox", "check", "--env", ENV, "--stage", stage, "--clients", "3", "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 0, report["summary"]
    assert report["passed"] is True and report["stage"] == stage
    assert report["url"] == sandbox.gateway[f"websocket {stage}"]
    assert report["clients"] == 3 and report["connected"] == 3
    # The environment's release thresholds (config/staging.json release.synthetic_checks).
    assert report["thresholds"] == {"p99_latency_ms": 1500, "min_success_rate": 0.99}
    assert report["messages_received"] == report["messages_expected"] == 3 * 20
    assert report["unauthorized_refused"] is True


def test_approval_gate_then_approve(sandbox: SandboxState, artifacts, capsys) -> None:
    arn = start(capsys, artifacts, "2.1.0", "e2e-approve", "--approval")
    wait_for_task_started(sandbox, arn, "ApprovalGate")
    assert main(["--sandbox", "release", "approve", "e2e-approve", "--env", ENV]) == 0, (
        capsys.readouterr().err
    )
    capsys.readouterr()
    code, records = watch(capsys, "e2e-approve")
    assert code == 0, records[-1]


def test_manual_rollback_during_a_bake(sandbox: SandboxState, artifacts, capsys) -> None:
    before = live_versions(sandbox)
    uri, sha = artifacts["2.2.0"]
    code = main(
        [
            "--sandbox",
            "release",
            "start",
            "--env",
            ENV,
            "--version",
            "2.2.0",
            "--artifact",
            uri,
            "--sha256",
            sha,
            "--steps",
            "50,100",
            "--bake",
            "3600",
            "--release-id",
            "e2e-rollback",
            "--min-green-invocations",
            "0",
            "--json",
        ]
    )
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    arn = aws(sandbox, "stepfunctions").list_executions(
        stateMachineArn=sandbox.state_machines[f"{ENV}-release"]
    )["executions"][0]["executionArn"]
    wait_for_state(sandbox, arn, "Bake")
    assert main(["--sandbox", "release", "rollback", "--env", ENV, "--reason", "e2e", "--wait"]) == 0
    capsys.readouterr()
    code, records = watch(capsys, arn)
    assert code == 1
    assert records[-1]["status"] in {"ABORTED", "FAILED"}
    assert live_versions(sandbox) == before
    assert main(["--sandbox", "release", "history", "--env", ENV, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "ROLLED_BACK"
