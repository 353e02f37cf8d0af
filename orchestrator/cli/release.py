"""`orchestrator release`: start, watch, approve, reject, roll back, inspect and redrive releases."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.artifacts import upload_bundle
from orchestrator.aws import Aws, Names, find_task_token, lock_holder, release_records
from orchestrator.cli.context import (
    EXIT_AWS,
    EXIT_RELEASE_FAILED,
    CliError,
    EnvOpt,
    JsonOpt,
    Options,
    check_env,
    group,
    options,
    out,
    usage_error,
    whoami,
)
from orchestrator.requests import (
    RequestError,
    artifact_sha256,
    build_request,
    bundle_key,
    bundle_manifest_version,
    local_bundle,
    read_request_file,
)
from orchestrator.sandbox.state import read_state
from orchestrator.watch import Watcher

release_app = group("Start, watch, approve and roll back releases.")
# How long `release rollback --wait` waits for the rollback to finish: the alarm-rollback
# function's timeout (330 s, which covers its canary drain) and a margin.
ROLLBACK_WAIT_SECONDS = 360


def register(app: typer.Typer) -> None:
    app.add_typer(release_app, name="release")


def execution_arn_for(aws: Aws, env: str, ref: str) -> str:
    """An execution ARN from an ARN or a release id (the execution's name)."""
    if ref.startswith("arn:"):
        if ":execution:" not in ref:
            usage_error(f"{ref!r} is not an execution ARN")
        return ref
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}", ref):
        usage_error(f"{ref!r} is neither an execution ARN nor a release id")
    machine = aws.state_machine_arn(Names(env).release_state_machine)
    return machine.replace(":stateMachine:", ":execution:") + f":{ref}"


def latest_execution(aws: Aws, env: str, running_only: bool = False) -> dict[str, Any] | None:
    machine = aws.state_machine_arn(Names(env).release_state_machine)
    executions = aws.list_executions(machine, status="RUNNING" if running_only else None, limit=1)
    return executions[0] if executions else None


@release_app.command("start")
def release_start(
    ctx: typer.Context,
    env: EnvOpt,
    version: Annotated[
        str | None, typer.Option(help="Service version to release, e.g. 1.8.0 (or from --request-file).")
    ] = None,
    artifact: Annotated[
        str | None,
        typer.Option(
            help="S3 URI of the code bundle (.zip), or with --sandbox a local bundle such as "
            "dist/service-<hash>.zip, uploaded to the sandbox's artifact bucket (or from --request-file)."
        ),
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="Hex SHA-256 of the bundle (else read from S3's checksum).")
    ] = None,
    steps: Annotated[
        str | None, typer.Option(help="Traffic percents, e.g. 10,50,100 (default: the environment's).")
    ] = None,
    bake: Annotated[int | None, typer.Option(help="Bake seconds after each step.")] = None,
    dry_run: Annotated[
        bool | None,
        typer.Option("--dry-run/--no-dry-run", help="Run every check; never change the live alias."),
    ] = None,
    approval: Annotated[
        bool | None,
        typer.Option("--approval/--no-approval", help="Wait for `release approve` before shifting traffic."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Watch until the release ends; exit code follows it.")
    ] = False,
    requested_by: Annotated[
        str | None, typer.Option(help="Recorded as the requester (default: your user).")
    ] = None,
    release_id: Annotated[
        str | None, typer.Option(help="Release id (execution name); generated if absent.")
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option("--config", help="NAME=VALUE set on every function's new version (repeatable)."),
    ] = None,
    min_green_invocations: Annotated[
        int | None, typer.Option(help="Green invocations required per bake.")
    ] = None,
    judge: Annotated[
        bool | None,
        typer.Option(
            "--judge/--no-judge",
            help="Judge green against blue after each bake (default: on, with the environment's thresholds).",
        ),
    ] = None,
    routing: Annotated[
        str | None,
        typer.Option(
            help="How steps send traffic to green: `invocations` (alias weights, per invocation) or "
            "`connections` (the edge's share of new WebSocket connections; each stays on one version). "
            "Default: the environment's.",
        ),
    ] = None,
    request_file: Annotated[
        Path | None,
        typer.Option(
            help="A JSON release request; on its own a complete request, options override its fields."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a release request locally, then start the release state machine."""
    opts = options(ctx)
    check_env(env)
    aws = opts.aws()
    bundle: bytes | None = None
    if artifact is not None and "://" not in artifact:
        local = Path(artifact)
        bundle, artifact, sha256 = _local_bundle(opts, local, sha256)
    try:
        if bundle is not None and version is None:
            # The bundle's version (scripts/build_bundle.py's manifest beside the zip), unless the
            # request file gives one.
            given = read_request_file(request_file) if request_file is not None else {}
            if "version" not in given:
                version = bundle_manifest_version(local)
        request = build_request(
            env=env,
            version=version,
            artifact=artifact,
            sha256=sha256,
            steps=steps,
            bake=bake,
            dry_run=dry_run,
            approval=approval,
            requested_by=requested_by,
            release_id=release_id,
            config=config or [],
            min_green_invocations=min_green_invocations,
            judge=judge,
            routing=routing,
            request_file=request_file,
            default_requester=whoami(),
            resolve_sha256=lambda bucket, key: artifact_sha256(aws, bucket, key),
        )
    except RequestError as exc:
        usage_error(str(exc))
    if bundle is not None:
        target = request["artifact"]
        upload_bundle(aws, target["bucket"], target["key"], bundle, target["sha256"])
        if not as_json:
            out.print(f"uploaded   s3://{target['bucket']}/{target['key']}")
    machine = aws.state_machine_arn(Names(env).release_state_machine)
    started = aws.start_execution(machine, request["release_id"], request)
    arn = started["executionArn"]
    console_url = aws.console_url(arn)
    if as_json:
        print(
            json.dumps(
                {"release_id": request["release_id"], "execution_arn": arn, "console_url": console_url}
            )
        )
    else:
        out.print(f"release [bold]{request['release_id']}[/] started")
        out.print(f"execution  {arn}")
        if console_url:
            out.print(f"console    {console_url}")
        else:
            release_id = request["release_id"]
            out.print(
                f"console    none in the sandbox: `orchestrator --sandbox release watch {release_id} --env {env}`, "
                f"or an HTML page: `orchestrator --sandbox render --execution {arn} --out {release_id}.html`",
                soft_wrap=True,
            )
    if wait:
        raise typer.Exit(watch_execution(opts, aws, env, arn, as_json=as_json, interval=None))


def _local_bundle(opts: Options, path: Path, sha256: str | None) -> tuple[bytes, str, str]:
    """A local bundle for the sandbox: its bytes, the S3 URI it will have in the sandbox's
    artifact bucket (scripts/build_bundle.py's content-addressed key) and its digest."""
    if not opts.target.sandbox:
        usage_error(
            f"--artifact: {str(path)!r} is not an S3 URI; a local bundle is uploaded for you only with "
            "--sandbox (on AWS: scripts/build_bundle.py upload, then pass its s3:// URI)"
        )
    try:
        body, digest = local_bundle(path)
    except RequestError as exc:
        usage_error(str(exc))
    if sha256 is not None and sha256.lower() != digest:
        usage_error(f"--sha256: {sha256} is not the digest of {path} ({digest})")
    bucket = read_state(opts.sandbox_dir, check_endpoint=False).artifact_bucket
    if not bucket:
        raise CliError("the running sandbox has no artifact bucket (started by an older version): restart it")
    return body, f"s3://{bucket}/{bundle_key(digest)}", digest


# ---- release watch ----------------------------------------------------------------------


def watch_execution(
    opts: Options, aws: Aws, env: str, arn: str, *, as_json: bool, interval: float | None
) -> int:
    scale = 1.0
    if opts.target.sandbox:
        scale = read_state(opts.sandbox_dir, check_endpoint=False).time_scale
    watcher = Watcher(
        aws, arn, Names(env), interval=interval or (0.25 if opts.target.sandbox else 2.0), time_scale=scale
    )
    return watcher.run_json(sys.stdout) if as_json else watcher.run_live(out)


@release_app.command("watch")
def release_watch(
    ctx: typer.Context,
    execution: Annotated[
        str | None, typer.Argument(help="Execution ARN or release id (default: the latest).")
    ] = None,
    env: EnvOpt = "staging",
    as_json: JsonOpt = False,
    interval: Annotated[float | None, typer.Option(min=0.05, help="Seconds between refreshes.")] = None,
) -> None:
    """Follow a release live: each state, the traffic split, bake countdown, alarms."""
    opts = options(ctx)
    check_env(env)
    aws = opts.aws()
    if execution:
        arn = execution_arn_for(aws, env, execution)
    else:
        latest = latest_execution(aws, env)
        if latest is None:
            raise CliError(f"no release execution found in {env}", EXIT_AWS)
        arn = latest["executionArn"]
    raise typer.Exit(watch_execution(opts, aws, env, arn, as_json=as_json, interval=interval))


# ---- approve / reject -------------------------------------------------------------------


def _outstanding_token(aws: Aws, arn: str) -> tuple[str, str]:
    described = aws.describe_execution(arn)
    if described["status"] != "RUNNING":
        raise CliError(
            f"execution {arn.rsplit(':', 1)[-1]} is {described['status']}, not waiting for approval"
        )
    found = find_task_token(aws.history_after(arn))
    if found is None:
        raise CliError(
            f"execution {arn.rsplit(':', 1)[-1]} is not waiting for approval (no outstanding task token)"
        )
    return found


def _waiting_for_approval(ctx: typer.Context, env: str, release: str) -> tuple[Any, str, str, str]:
    """The release's execution and the task token of the gate it waits at (approve and reject)."""
    check_env(env)
    aws = options(ctx).aws()
    arn = execution_arn_for(aws, env, release)
    state, token = _outstanding_token(aws, arn)
    return aws, arn, state, token


@release_app.command("approve")
def release_approve(
    ctx: typer.Context,
    release: Annotated[str, typer.Argument(help="Release id or execution ARN.")],
    env: EnvOpt = "staging",
    comment: Annotated[str, typer.Option(help="Recorded with the approval.")] = "",
) -> None:
    """Approve a release waiting at its approval gate."""
    aws, arn, state, token = _waiting_for_approval(ctx, env, release)
    aws.send_task_success(token, {"approved": True, "approved_by": whoami(), "comment": comment})
    out.print(f"approved: {arn.rsplit(':', 1)[-1]} continues past {state}")


@release_app.command("reject")
def release_reject(
    ctx: typer.Context,
    release: Annotated[str, typer.Argument(help="Release id or execution ARN.")],
    env: EnvOpt = "staging",
    reason: Annotated[
        str, typer.Option(help="Why; recorded in the release history.")
    ] = "rejected by operator",
) -> None:
    """Reject a release waiting at its approval gate (it rolls back)."""
    aws, arn, state, token = _waiting_for_approval(ctx, env, release)
    aws.send_task_failure(token, "ApprovalRejected", f"{reason} (by {whoami()})")
    out.print(f"rejected: {arn.rsplit(':', 1)[-1]} stops at {state} and rolls back")


# ---- rollback ---------------------------------------------------------------------------


@release_app.command("rollback")
def release_rollback(
    ctx: typer.Context,
    env: EnvOpt = "staging",
    reason: Annotated[
        str, typer.Option(help="Why; becomes the alarm reason, the stop cause and the record.")
    ] = "manual rollback",
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Wait until the rollback is done: the execution ended and the lock released "
            "(after the canary drain, in connections routing).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Roll the active release back now, through the very path a firing alarm takes.

    Sets the release-health alarm (or, where composites are unavailable, the first release-guard
    alarm) to ALARM with SetAlarmState: CloudWatch emits the `Alarm State Change` event, the
    alarm-rollback rule restores blue and stops the execution, exactly as for a real alarm.
    """
    opts = options(ctx)
    check_env(env)
    aws = opts.aws()
    target = Names(env)
    running = latest_execution(aws, env, running_only=True)
    if running is None:
        raise CliError(f"no release is running in {env}: nothing to roll back", EXIT_RELEASE_FAILED)
    alarms = {a.name for a in aws.alarm_states(target.alarm_prefix)}
    guards = sorted(a for a in alarms if a.startswith(target.guard_alarm_prefix))
    alarm = target.health_alarm if target.health_alarm in alarms else (guards[0] if guards else None)
    if alarm is None:
        raise CliError(f"no release-guard alarm named {target.alarm_prefix}* exists in {env}")
    cause = f"{reason} (by {whoami()} with orchestrator release rollback)"
    aws.call("cloudwatch", "set_alarm_state", AlarmName=alarm, StateValue="ALARM", StateReason=cause[:1023])
    result: dict[str, Any] = {"execution_arn": running["executionArn"], "alarm": alarm, "reason": cause}
    if not as_json:
        out.print(f"rollback requested: alarm {alarm} set to ALARM; the alarm-rollback rule restores blue")
    if wait:
        # The alarm-rollback function stops the execution first, then restores blue, drains the
        # canary stage and releases the lock: the rollback is done when the lock is free of it.
        deadline = time.monotonic() + ROLLBACK_WAIT_SECONDS
        while time.monotonic() < deadline:
            status = aws.describe_execution(running["executionArn"])["status"]
            if status != "RUNNING":
                break
            time.sleep(0.2)
        result["status"] = status
        if not as_json:
            out.print(f"execution {running['name']} is {status}")
        holder = lock_holder(aws, target)
        while holder == running["name"] and time.monotonic() < deadline:
            time.sleep(0.2)
            holder = lock_holder(aws, target)
        result["lock_released"] = holder != running["name"]
        if not as_json:
            out.print(
                f"lock of {env} released by {running['name']}"
                if result["lock_released"]
                else f"lock of {env} still held by {running['name']} after {ROLLBACK_WAIT_SECONDS} s"
            )
        if status != "RUNNING":
            result["alarm_reset"] = _reset_rollback_alarm(aws, target, alarm, guards)
            if not as_json:
                out.print(
                    f"alarm {alarm} set back to OK: the rollback is done and no release guard is in ALARM"
                    if result["alarm_reset"]
                    else f"alarm {alarm} left in ALARM: a release guard is in ALARM"
                )
    if as_json:
        print(json.dumps(result))
    if wait and not (result["status"] != "RUNNING" and result["lock_released"]):
        raise CliError(
            f"the rollback of {running['name']} did not finish in {ROLLBACK_WAIT_SECONDS} s "
            f"(execution {result['status']}, lock {'released' if result['lock_released'] else 'held'})",
            EXIT_RELEASE_FAILED,
        )


def _reset_rollback_alarm(aws: Aws, target: Names, alarm: str, guards: list[str]) -> bool:
    """Set the alarm this command raised back to OK once the release it stopped has ended.

    A composite alarm set with SetAlarmState keeps that state until one of its children changes
    (CloudWatch evaluates the rule again only then): left in ALARM, it would fail the next
    release's first CheckAlarms. It goes back to OK only while no release guard is in ALARM, so a
    real alarm is never hidden."""
    states = {a.name: a.state for a in aws.alarm_states(target.alarm_prefix)}
    if any(states.get(name) == "ALARM" for name in guards if name != alarm):
        return False
    aws.call(
        "cloudwatch",
        "set_alarm_state",
        AlarmName=alarm,
        StateValue="OK",
        StateReason="manual rollback done (orchestrator release rollback)",
    )
    return True


# ---- status / history / redrive -------------------------------------------------------


@release_app.command("status")
def release_status(ctx: typer.Context, env: EnvOpt = "staging", as_json: JsonOpt = False) -> None:
    """The environment now: the active release, what `live` serves, the release-guard alarms."""
    opts = options(ctx)
    check_env(env)
    aws = opts.aws()
    target = Names(env)
    latest = latest_execution(aws, env)
    splits = [aws.alias_split(fn) for fn in target.functions()]
    alarms = aws.alarm_states(target.alarm_prefix)
    report: dict[str, Any] = {
        "environment": env,
        "latest_execution": None,
        "live": {s.function: {"version": s.version, "weights": s.weights} for s in splits},
        "alarms": {a.name: a.state for a in alarms},
    }
    if latest:
        report["latest_execution"] = {
            "name": latest["name"],
            "status": latest["status"],
            "execution_arn": latest["executionArn"],
            "started": latest["startDate"].isoformat(),
        }
    if as_json:
        print(json.dumps(report))
        return
    if latest:
        out.print(
            f"latest release  {latest['name']}  [bold]{latest['status']}[/]  (started {latest['startDate']:%Y-%m-%d %H:%M:%S})"
        )
    else:
        out.print("no release has run in this environment")
    table = Table(title=f"{env}: live alias", title_justify="left")
    table.add_column("function")
    table.add_column("serves")
    for s in splits:
        table.add_row(s.function, s.describe())
    out.print(table)
    for alarm in alarms:
        colour = {"OK": "green", "ALARM": "red"}.get(alarm.state, "yellow")
        out.print(f"alarm  [{colour}]{alarm.state:<17}[/] {alarm.name}")


@release_app.command("history")
def release_history(
    ctx: typer.Context,
    env: EnvOpt = "staging",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most recent N releases.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Past releases from the release table: who, what, when, outcome."""
    opts = options(ctx)
    check_env(env)
    records = release_records(opts.aws(), Names(env), limit)
    if as_json:
        print(json.dumps(records, default=str))
        return
    table = Table(title=f"{env}: releases", title_justify="left")
    for column in ("release", "version", "status", "requested by", "started", "ended", "summary"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            str(r.get("release_id", "")),
            str(r.get("version", "")),
            str(r.get("status", "")),
            str(r.get("requested_by", "")),
            str(r.get("started_at", "")),
            str(r.get("ended_at", "")),
            str(r.get("outcome_summary", ""))[:120],
        )
    out.print(table)


@release_app.command("redrive")
def release_redrive(
    ctx: typer.Context,
    execution: Annotated[str, typer.Argument(help="Execution ARN or release id.")],
    env: EnvOpt = "staging",
) -> None:
    """Resume a failed execution from the state that failed (RedriveExecution)."""
    opts = options(ctx)
    check_env(env)
    aws = opts.aws()
    arn = execution_arn_for(aws, env, execution)
    result = aws.redrive_execution(arn)
    out.print(f"redriven: {arn} (at {result.get('redriveDate')})")
