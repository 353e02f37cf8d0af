"""The permission tour: every function and state machine of the staging stage on its happy
paths in one sandbox, IAM enforced, then every role held to what it used.

The tour goes through the CLI and boto3 like an operator: a release behind an approval gate (in
`connections` routing, as are the unhealthy release and the manual rollback), a dry run, a
release whose green fails its synthetic checks, a manual rollback during a bake (with clients held
on the canary stage for DrainCanary to close), a release stopped
mid-bake, the backup fired by its schedule, the DR drill with failover, the event-path drill, the
cost check, the weekly DR drill fired by its schedule and an API-key rotation. The sandbox clock
starts in the schedules' longest quiet gap, so nothing else fires on it whatever the time of day.
Then: no call was denied, and every grant nothing exercised is listed with its reason in infra/iam_unexercised.py (an entry that matches nothing fails too, so
the list cannot rot). The report lands in reports/iam-report.{json,md} (`make iam-report`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import redis

from contracts import names
from infra.iam_unexercised import UNEXERCISED, listed_reason
from orchestrator.cli import main
from orchestrator.lambda_runtime import MODE_VARIABLE
from orchestrator.sandbox.daemon import IAM_OBSERVATIONS, IAM_REPORT, start_background, stop_background
from orchestrator.sandbox.state import SandboxState
from orchestrator.traffic import TrafficGenerator
from tests.e2e.iam_checks import assert_no_denials, report
from tests.e2e.release_args import load_tolerant_checks
from tests.e2e.sandbox_clock import quiet_clock_start
from tests.e2e.test_cli_sandbox import aws, live_versions, wait_for_state, wait_for_task_started
from tests.e2e.test_ops_sandbox import cli, lock

pytestmark = pytest.mark.slow
ENV = "staging"
REPORTS = Path(__file__).resolve().parents[2] / "reports"


def _upload(state: SandboxState, version: str) -> tuple[str, str]:
    import hashlib

    from orchestrator.demo import ARTIFACT_BUCKET, artifact

    body = artifact(version)
    key = f"service/service-{version}.zip"
    aws(state, "s3").put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=body)
    return f"s3://{ARTIFACT_BUCKET}/{key}", hashlib.sha256(body).hexdigest()


def _release(
    capsys: pytest.CaptureFixture[str], state: SandboxState, version: str, release_id: str, *extra: str
) -> tuple[int, Any]:
    uri, sha = _upload(state, version)
    return cli(
        capsys,
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
        *load_tolerant_checks(),
        *extra,
    )


def _execution(state: SandboxState, release_id: str) -> str:
    sfn = aws(state, "stepfunctions")
    for execution in sfn.list_executions(
        stateMachineArn=state.state_machines[names.release_state_machine_name(ENV)]
    )["executions"]:
        if execution["name"] == release_id:
            return str(execution["executionArn"])
    raise AssertionError(f"no execution named {release_id}")


def _until(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _hold_until_one_is_on(state: SandboxState, version: str, batches: int = 10) -> list[TrafficGenerator]:
    """Open clients that stay connected, 4 at a time, until one is answered by `version` (at a
    50% step, 10 batches all on blue has a chance of 2**-40)."""
    sqs = aws(state, "sqs")
    queue = sqs.get_queue_url(QueueName=f"{ENV}-realtime-events")["QueueUrl"]
    held: list[TrafficGenerator] = []
    for _ in range(batches):
        generator = TrafficGenerator(
            state.gateway["websocket live"],
            state.gateway["api key"],
            sqs,
            queue,
            clients=4,
            ping_interval=0.2,
            event_interval=3600,
        )
        generator.start()
        held.append(generator)
        _until(
            lambda g=generator: len([c for c in g.stats.connections if c.versions]) >= 4,
            "every held client answered",
        )
        if any(version in c.versions for g in held for c in g.stats.connections):
            return held
    for generator in held:
        generator.stop()
    raise AssertionError(f"no held client was answered by {version} in {batches} batches")


def _tour(state: SandboxState, capsys: pytest.CaptureFixture[str]) -> None:
    assert state.artifact_bucket == _bucket()  # the sandbox creates it at start-up

    # A release behind the approval gate, approved: every release task on its way to Finalize, in
    # `connections` routing (SetWeights and Finalize write the edge's share in the KeyValueStore).
    code, started = _release(
        capsys, state, "3.0.0", "tour-approved", "--approval", "--routing", "connections"
    )
    assert code == 0, started
    wait_for_task_started(state, started["execution_arn"], "ApprovalGate")
    assert main(["--sandbox", "release", "approve", "tour-approved", "--env", ENV]) == 0, (
        capsys.readouterr().err
    )
    capsys.readouterr()
    assert (
        main(["--sandbox", "release", "watch", "tour-approved", "--env", ENV, "--json", "--interval", "0.1"])
        == 0
    )
    capsys.readouterr()

    # A dry run rehearses every step without moving live.
    before = live_versions(state)
    code, out = _release(capsys, state, "3.1.0", "tour-dry-run", "--dry-run", "--wait")
    assert code == 0, out
    assert live_versions(state) == before

    # Green drops every fanned-out message: SyntheticChecks fails it, Rollback runs and, in
    # `connections` routing, DrainCanary after it.
    code, out = _release(
        capsys,
        state,
        "3.2.0",
        "tour-unhealthy",
        "--config",
        "FAULT_DROP_RATE=1",
        "--routing",
        "connections",
        "--wait",
    )
    assert code == 1, out
    assert live_versions(state) == before

    # A manual rollback during a bake: the composite alarm, its rule and the alarm-rollback function,
    # which in `connections` routing closes the edge and invokes DrainCanary. Clients held open
    # until one is on the canary stage, so DrainCanary closes it through `@connections` DELETE.
    code, out = _release(
        capsys, state, "3.3.0", "tour-rollback", "--bake", "3600", "--routing", "connections"
    )
    assert code == 0, out
    arn = out["execution_arn"]
    wait_for_state(state, arn, "Bake")
    held = _hold_until_one_is_on(state, "3.3.0")
    try:
        assert main(["--sandbox", "release", "rollback", "--env", ENV, "--reason", "tour", "--wait"]) == 0
    finally:
        for generator in held:
            generator.stop()
    capsys.readouterr()
    _until(lambda: lock(state) is None, "the lock released after the alarm rollback")
    assert live_versions(state) == before
    aws(state, "cloudwatch").set_alarm_state(
        AlarmName=names.release_health_alarm_name(ENV), StateValue="OK", StateReason="tour: rollback done"
    )

    # A release stopped by hand mid-bake: the execution-ended rule puts live back and frees the lock.
    code, out = _release(capsys, state, "3.4.0", "tour-stopped", "--bake", "3600")
    assert code == 0, out
    wait_for_state(state, out["execution_arn"], "Bake")
    aws(state, "stepfunctions").stop_execution(
        executionArn=out["execution_arn"], error="Tour", cause="stopped by hand"
    )
    _until(lambda: lock(state) is None, "the lock released after the stopped execution")
    assert live_versions(state) == before

    # Operations: backup, then the DR drill from it (with failover), the event-path drill, the cost check.
    cache = redis.Redis.from_url(state.redis_url)
    for n in range(50):
        cache.set(f"cache:v1:snap:synthetic:tour-{n}", json.dumps({"id": n}))
    # The backup as its schedule fires it: the sandbox clock moves to just before 03:00 and
    # Scheduler's role invokes the function (asynchronously, as Scheduler does).
    code, out = cli(capsys, "schedule", "skip-to", "backup", "--env", ENV, "--wait", "--timeout", "240")
    assert code == 0 and out["run"]["trigger"] == "clock", out
    snapshot = f"{names.cache_replication_group_id(ENV)}-{datetime.fromisoformat(out['due']):%Y-%m-%d}"
    s3 = aws(state, "s3")
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "backups" in b["Name"])
    _until(
        lambda: s3.list_objects_v2(Bucket=bucket, Prefix=f"manifests/{snapshot}.json").get("KeyCount"),
        f"the scheduled backup's manifest {snapshot}",
        timeout=120,
    )
    code, out = cli(capsys, "drill", "start", "--env", ENV, "--drill-id", "tour-dr", "--failover", "--wait")
    assert code == 0 and out["status"] == "SUCCEEDED", out
    code, out = cli(
        capsys,
        "drill",
        "start",
        "--env",
        ENV,
        "--type",
        "event-path",
        "--drill-id",
        "tour-ep",
        "--events",
        "3",
        "--wait",
    )
    assert code == 0 and out["status"] == "SUCCEEDED", out
    code, out = cli(capsys, "ops", "run", "cost-check", "--env", ENV)
    assert code == 0, out
    # The weekly DR drill as its schedule fires it: Scheduler's role starts the execution.
    code, out = cli(capsys, "schedule", "skip-to", "dr-drill", "--env", ENV, "--wait", "--timeout", "300")
    assert code == 0 and out["status"] == "SUCCEEDED", out

    # API-key rotation, as Secrets Manager runs it: createSecret, setSecret, testSecret, finishSecret.
    secrets = aws(state, "secretsmanager")
    secret = names.secret_name(ENV, "api-keys")
    before_key = secrets.get_secret_value(SecretId=secret)["SecretString"]
    rotation = aws(state, "lambda").get_function(FunctionName=names.rotation_function_name(ENV))
    # The stage's RotationSchedule turns rotation on with its rules; the sandbox does not deploy it.
    secrets.rotate_secret(
        SecretId=secret,
        RotationLambdaARN=rotation["Configuration"]["FunctionArn"],
        RotationRules={"AutomaticallyAfterDays": 30},
    )
    assert secrets.get_secret_value(SecretId=secret)["SecretString"] != before_key
    assert lock(state) is None


def _bucket() -> str:
    from orchestrator.demo import ARTIFACT_BUCKET

    return ARTIFACT_BUCKET


def test_every_role_uses_what_it_is_granted_and_nothing_is_denied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], synthesized: Path
) -> None:
    directory = tmp_path / "sandbox"
    saved = {name: os.environ.get(name) for name in ("ORCHESTRATOR_SANDBOX_DIR", MODE_VARIABLE)}
    os.environ.update({"ORCHESTRATOR_SANDBOX_DIR": str(directory), MODE_VARIABLE: "isolated"})
    try:
        # The schedules fire on the clock, which starts in their longest quiet gap: only the
        # tour's `schedule skip-to` makes them fire (Scheduler's role is judged too).
        state = start_background(directory, time_scale=60.0, schedules=True, clock_start=quiet_clock_start())
        try:
            _tour(state, capsys)
        finally:
            stop_background(directory)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    REPORTS.mkdir(exist_ok=True)
    for name in (IAM_OBSERVATIONS, f"{IAM_REPORT}.json", f"{IAM_REPORT}.md"):
        shutil.copy(directory / name, REPORTS / name)

    observed = assert_no_denials(directory)
    unlisted: list[str] = []
    used = {entry: 0 for entry in UNEXERCISED}
    for role in report(directory)["roles"]:
        callers = [c["name"] for c in role["callers"]] or [role["name"]]
        for action, resources in unexercised_actions(role).items():
            entry = listed_reason(action, callers)
            if entry is None:
                unlisted.append(f"{role['name']}: {action} on {', '.join(sorted(resources))}")
            else:
                used[entry] += 1
    assert not unlisted, (
        "granted but never exercised by the tour, and not listed with a reason in infra/iam_unexercised.py:\n"
        + "\n".join(sorted(unlisted))
    )
    stale = [f"{e.action} for {e.callers}" for e, n in used.items() if n == 0 and not e.timing]
    assert not stale, (
        "infra/iam_unexercised.py lists grants that are exercised or no longer granted:\n" + "\n".join(stale)
    )
    assert len(observed) > 100


def unexercised_actions(role: dict[str, Any]) -> dict[str, set[str]]:
    """Granted actions no allowed call of the role used, on any resource (an action used on one of
    its granted resources counts as exercised: the grant patterns of one statement go together)."""
    used = {o["action"].lower() for o in role["observed"] if o["verdict"] == "Allowed"}
    found: dict[str, set[str]] = {}
    for grant in role["unexercised"]:
        if not any(fnmatchcase(action, grant["action"].lower()) for action in used):
            found.setdefault(grant["action"], set()).add(grant["resource"])
    return found
