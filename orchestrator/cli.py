"""`orchestrator`: start, watch, approve and roll back releases, against AWS or the sandbox.

Exit codes (scripts rely on them):
  0  success (the release succeeded, or the command did what it was asked)
  1  the release failed, was rolled back or aborted
  2  bad arguments or an invalid release request (the message names the field)
  3  AWS or the sandbox refused or could not be reached (the message names the call)
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from contracts import names
from orchestrator.aws import Aws, AwsError, Names, Target, find_task_token, function_keys
from orchestrator.paths import REPO_ROOT

EXIT_OK, EXIT_RELEASE_FAILED, EXIT_USAGE, EXIT_AWS = 0, 1, 2, 3
APPROVAL_STATE_HINT = "Approv"  # approval states are named like "AwaitApproval" / "ApprovalGate"

app = typer.Typer(
    name="orchestrator",
    help="Release orchestrator of the realtime analytics service (AWS or the local sandbox).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
release_app = typer.Typer(help="Start, watch, approve and roll back releases.", no_args_is_help=True)
sandbox_app = typer.Typer(
    help="The local sandbox: moto, Redis, the WebSocket gateway, the stage.", no_args_is_help=True
)
app.add_typer(release_app, name="release")
app.add_typer(sandbox_app, name="sandbox")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(Exception):
    """A one-line failure with its exit code."""

    def __init__(self, message: str, code: int = EXIT_AWS) -> None:
        super().__init__(message)
        self.code = code


def usage_error(message: str) -> NoReturn:
    raise CliError(message, EXIT_USAGE)


@dataclass
class Options:
    target: Target
    debug: bool
    sandbox_dir: Path

    def aws(self) -> Aws:
        return Aws(self.target)


def _opts(ctx: typer.Context) -> Options:
    obj = ctx.find_root().obj
    assert isinstance(obj, Options)
    return obj


def sandbox_dir() -> Path:
    return Path(os.environ.get("ORCHESTRATOR_SANDBOX_DIR", REPO_ROOT / ".sandbox"))


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option(help="AWS named profile (default credential chain otherwise).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="AWS region (default: the profile's or AWS_REGION).")
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(envvar="AWS_ENDPOINT_URL", help="Send every AWS call to this endpoint.")
    ] = None,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Talk to the running local sandbox.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    target = Target(profile=profile, region=region, endpoint_url=endpoint_url)
    if sandbox:
        from orchestrator.sandbox.state import SandboxNotRunning, read_state

        try:
            state = read_state(sandbox_dir())
        except SandboxNotRunning as exc:
            raise CliError(str(exc), EXIT_AWS) from exc
        target = Target(region=state.region, endpoint_url=state.moto_url, sandbox=True)
    ctx.obj = Options(target=target, debug=debug, sandbox_dir=sandbox_dir())


# ---- release start ----------------------------------------------------------------------


def parse_steps(text: str, bake: int | None, default_bake: int) -> list[dict[str, int]]:
    steps: list[dict[str, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d{1,3}", part):
            usage_error(f"--steps: {part!r} is not a whole percent (example: --steps 10,50,100)")
        steps.append({"percent": int(part), "bake_seconds": default_bake if bake is None else bake})
    return steps


def parse_artifact(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    if not match:
        usage_error(f"--artifact: {uri!r} is not an S3 URI (s3://bucket/key.zip)")
    return match.group(1), match.group(2)


def parse_config(pairs: list[str]) -> dict[str, str]:
    config: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            usage_error(f"--config: {pair!r} is not NAME=VALUE")
        config[name] = value
    return config


def environment_strategy(env: str) -> list[dict[str, int]] | None:
    """The environment's default traffic steps (config/<env>.json), if the file is there."""
    path = REPO_ROOT / "config" / f"{env}.json"
    try:
        steps = json.loads(path.read_text())["release"]["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [{"percent": int(s["percent"]), "bake_seconds": int(s["bake_seconds"])} for s in steps]


def check_env(env: str) -> str:
    if env not in names.ENVIRONMENTS:
        usage_error(f"--env: {env!r} is not one of {', '.join(names.ENVIRONMENTS)}")
    return env


def artifact_sha256(aws: Aws, bucket: str, key: str) -> str:
    """The artifact's whole-object SHA-256 from S3 (uploaded with --checksum-algorithm SHA256)."""
    try:
        head = aws.call("s3", "head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except AwsError as exc:
        raise CliError(f"--sha256 not given and the artifact could not be read: {exc}", EXIT_USAGE) from exc
    value = head.get("ChecksumSHA256")
    if not value or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        usage_error("artifact.sha256: pass --sha256 (the object has no full-object SHA-256 checksum in S3)")
    return base64.b64decode(value.split("-")[0]).hex()


def build_request(
    *,
    env: str,
    version: str,
    artifact: str,
    sha256: str | None,
    steps: str | None,
    bake: int | None,
    dry_run: bool,
    approval: bool,
    requested_by: str | None,
    release_id: str | None,
    config: list[str],
    min_green_invocations: int | None,
    request_file: Path | None,
    aws: Aws | None,
) -> dict[str, Any]:
    """The release request as a dict, validated; usage errors for anything invalid."""
    from contracts.release import InvalidRequest, parse_release_request

    if bake is not None and bake < 0:
        usage_error("--bake: must be 0 or more seconds")
    base: dict[str, Any] = {}
    if request_file is not None:
        try:
            base = json.loads(request_file.read_text())
        except (OSError, ValueError) as exc:
            usage_error(f"--request-file: cannot read {request_file}: {str(exc).splitlines()[0]}")
        if not isinstance(base, dict):
            usage_error("--request-file: must hold a JSON object")
    bucket, key = parse_artifact(artifact)
    request: dict[str, Any] = {
        **base,
        "version": version,
        "artifact": {"bucket": bucket, "key": key, "sha256": sha256 or ""},
        "dry_run": dry_run or bool(base.get("dry_run", False)),
        "approval": "required" if approval else base.get("approval", "none"),
        "requested_by": requested_by or base.get("requested_by") or _whoami(),
    }
    if release_id:
        request["release_id"] = release_id
    if config:
        request["configuration"] = {**base.get("configuration", {}), **parse_config(config)}
    if min_green_invocations is not None:
        request["min_green_invocations"] = min_green_invocations
    default_steps = environment_strategy(env)
    if steps:
        request["strategy"] = {"steps": parse_steps(steps, bake, 300)}
    elif bake is not None:
        percents = ",".join(
            str(s["percent"]) for s in default_steps or [{"percent": 10}, {"percent": 50}, {"percent": 100}]
        )
        request["strategy"] = {"steps": parse_steps(percents, bake, bake)}
    elif "strategy" not in request and default_steps:
        request["strategy"] = {"steps": default_steps}
    if not sha256:
        try:
            # Everything else must be valid before S3 is asked for the checksum.
            parse_release_request(
                {**request, "artifact": {"bucket": bucket, "key": key, "sha256": "0" * 64}},
                function_keys=function_keys(),
            )
        except InvalidRequest as exc:
            usage_error(str(exc))
        if aws is None:
            usage_error("artifact.sha256: pass --sha256")
        request["artifact"]["sha256"] = artifact_sha256(aws, bucket, key)
    try:
        model = parse_release_request(request, function_keys=function_keys()).with_defaults()
    except InvalidRequest as exc:
        usage_error(str(exc))
    return model.model_dump(mode="json", exclude_none=True)


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


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


EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Environment: staging or production.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


@release_app.command("start")
def release_start(
    ctx: typer.Context,
    env: EnvOpt,
    version: Annotated[str, typer.Option(help="Service version to release, e.g. 1.8.0.")],
    artifact: Annotated[str, typer.Option(help="S3 URI of the code bundle (.zip).")],
    sha256: Annotated[
        str | None, typer.Option(help="Hex SHA-256 of the bundle (else read from S3's checksum).")
    ] = None,
    steps: Annotated[
        str | None, typer.Option(help="Traffic percents, e.g. 10,50,100 (default: the environment's).")
    ] = None,
    bake: Annotated[int | None, typer.Option(help="Bake seconds after each step.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run every check; never change the live alias.")
    ] = False,
    approval: Annotated[
        bool, typer.Option("--approval", help="Wait for `release approve` before shifting traffic.")
    ] = False,
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
    request_file: Annotated[Path | None, typer.Option(help="Start from a JSON release request file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a release request locally, then start the release state machine."""
    opts = _opts(ctx)
    check_env(env)
    aws = opts.aws()
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
        request_file=request_file,
        aws=aws,
    )
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
        out.print(
            f"console    {console_url or 'sandbox: `orchestrator --sandbox release watch` or `render`'}"
        )
    if wait:
        raise typer.Exit(_watch(opts, aws, env, arn, as_json=as_json, interval=None))


# ---- release watch ----------------------------------------------------------------------


def _watch(opts: Options, aws: Aws, env: str, arn: str, *, as_json: bool, interval: float | None) -> int:
    from orchestrator.watch import Watcher

    scale = 1.0
    if opts.target.sandbox:
        from orchestrator.sandbox.state import read_state

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
    opts = _opts(ctx)
    check_env(env)
    aws = opts.aws()
    if execution:
        arn = execution_arn_for(aws, env, execution)
    else:
        latest = latest_execution(aws, env)
        if latest is None:
            raise CliError(f"no release execution found in {env}", EXIT_AWS)
        arn = latest["executionArn"]
    raise typer.Exit(_watch(opts, aws, env, arn, as_json=as_json, interval=interval))


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
    aws = _opts(ctx).aws()
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
    aws.send_task_success(token, {"approved": True, "approved_by": _whoami(), "comment": comment})
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
    aws.send_task_failure(token, "ApprovalRejected", f"{reason} (by {_whoami()})")
    out.print(f"rejected: {arn.rsplit(':', 1)[-1]} stops at {state} and rolls back")


# ---- rollback ---------------------------------------------------------------------------


@release_app.command("rollback")
def release_rollback(
    ctx: typer.Context,
    env: EnvOpt = "staging",
    reason: Annotated[
        str, typer.Option(help="Why; becomes the alarm reason, the stop cause and the record.")
    ] = "manual rollback",
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the release execution has ended.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Roll the active release back now, through the very path a firing alarm takes.

    Sets the release-health alarm (or, where composites are unavailable, the first release-guard
    alarm) to ALARM with SetAlarmState: CloudWatch emits the `Alarm State Change` event, the
    alarm-rollback rule restores blue and stops the execution, exactly as for a real alarm.
    """
    opts = _opts(ctx)
    check_env(env)
    aws = opts.aws()
    names = Names(env)
    running = latest_execution(aws, env, running_only=True)
    if running is None:
        raise CliError(f"no release is running in {env}: nothing to roll back", EXIT_RELEASE_FAILED)
    alarms = {a.name for a in aws.alarm_states(names.alarm_prefix)}
    guards = sorted(a for a in alarms if a.startswith(names.guard_alarm_prefix))
    alarm = names.health_alarm if names.health_alarm in alarms else (guards[0] if guards else None)
    if alarm is None:
        raise CliError(f"no release-guard alarm named {names.alarm_prefix}* exists in {env}")
    cause = f"{reason} (by {_whoami()} with orchestrator release rollback)"
    aws.call("cloudwatch", "set_alarm_state", AlarmName=alarm, StateValue="ALARM", StateReason=cause[:1023])
    result: dict[str, Any] = {"execution_arn": running["executionArn"], "alarm": alarm, "reason": cause}
    if not as_json:
        out.print(f"rollback requested: alarm {alarm} set to ALARM; the alarm-rollback rule restores blue")
    if wait:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = aws.describe_execution(running["executionArn"])["status"]
            if status != "RUNNING":
                break
            time.sleep(0.2)
        result["status"] = status
        if not as_json:
            out.print(f"execution {running['name']} is {status}")
    if as_json:
        print(json.dumps(result))


# ---- status / history / redrive -------------------------------------------------------


@release_app.command("status")
def release_status(ctx: typer.Context, env: EnvOpt = "staging", as_json: JsonOpt = False) -> None:
    """The environment now: the active release, what `live` serves, the release-guard alarms."""
    opts = _opts(ctx)
    check_env(env)
    aws = opts.aws()
    names = Names(env)
    latest = latest_execution(aws, env)
    splits = [aws.alias_split(fn) for fn in names.functions()]
    alarms = aws.alarm_states(names.alarm_prefix)
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
    from orchestrator.aws import release_records

    opts = _opts(ctx)
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
    opts = _opts(ctx)
    check_env(env)
    aws = opts.aws()
    arn = execution_arn_for(aws, env, execution)
    result = aws.redrive_execution(arn)
    out.print(f"redriven: {arn} (at {result.get('redriveDate')})")


# ---- sandbox ------------------------------------------------------------------------------


@sandbox_app.command("up")
def sandbox_up(
    ctx: typer.Context,
    time_scale: Annotated[
        float, typer.Option(min=1.0, help="Virtual seconds per wall second for Wait states and bakes.")
    ] = 60.0,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Run the Lambda handlers inside the sandbox process (for comparison; "
            "default: each function in worker processes from its cdk.out asset).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start the sandbox in the background and print its endpoints."""
    from orchestrator.sandbox.daemon import SandboxError, start_background

    try:
        state = start_background(
            _opts(ctx).sandbox_dir,
            time_scale=time_scale,
            progress=None if as_json else err,
            in_process=in_process,
        )
    except SandboxError as exc:
        raise CliError(str(exc)) from exc
    if as_json:
        print(json.dumps(state.to_dict()))
    else:
        _print_sandbox(state)


@sandbox_app.command("down")
def sandbox_down(ctx: typer.Context) -> None:
    """Stop the background sandbox."""
    from orchestrator.sandbox.daemon import stop_background

    stopped = stop_background(_opts(ctx).sandbox_dir)
    out.print("sandbox stopped" if stopped else "sandbox was not running")


@sandbox_app.command("status")
def sandbox_status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Is the sandbox running, and where."""
    from orchestrator.sandbox.state import SandboxNotRunning, read_lambda_report, read_state

    try:
        state = read_state(_opts(ctx).sandbox_dir)
    except SandboxNotRunning as exc:
        if as_json:
            print(json.dumps({"running": False}))
        else:
            out.print(str(exc))
        raise typer.Exit(EXIT_AWS) from exc
    if as_json:
        print(json.dumps({"running": True, **state.to_dict()}))
    else:
        _print_sandbox(state)
        report = read_lambda_report(_opts(ctx).sandbox_dir)
        if report:
            cold = ", ".join(
                f"{name.removeprefix(f'{state.environment}-')} {figures['cold_start_ms_p50']:.0f}"
                for name, figures in report.get("functions", {}).items()
                if figures.get("cold_start_ms_p50") is not None
            )
            out.print(
                f"  cold start p50   {cold or 'none yet'} (ms; `orchestrator sandbox lambdas` for more)"
            )


@sandbox_app.command("lambdas")
def sandbox_lambdas(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Lambda workers of the running sandbox: cold starts (p50, max) and invocations per function."""
    from rich.table import Table

    from orchestrator.sandbox.state import SandboxNotRunning, read_lambda_report, read_state

    try:
        state = read_state(_opts(ctx).sandbox_dir)
    except SandboxNotRunning as exc:
        out.print(str(exc))
        raise typer.Exit(EXIT_AWS) from exc
    report = read_lambda_report(_opts(ctx).sandbox_dir)
    if as_json:
        print(json.dumps({"lambda_mode": state.lambda_mode, **(report or {})}))
        return
    if state.lambda_mode != "isolated":
        out.print("the sandbox runs its Lambda handlers in-process (started with --in-process): no workers")
        return
    if not report:
        out.print("no worker has started yet")
        return
    table = Table(
        title="Lambda workers (each function from its cdk.out asset, in its own processes)",
        title_justify="left",
    )
    for column in (
        "function",
        "invocations",
        "errors",
        "timeouts",
        "cold starts",
        "p50 ms",
        "max ms",
        "max RSS MB",
    ):
        table.add_column(column, justify="left" if column == "function" else "right")
    for name, f in report.get("functions", {}).items():
        p50, top = f.get("cold_start_ms_p50"), f.get("cold_start_ms_max")
        table.add_row(
            name,
            str(f["invocations"]),
            str(f["errors"]),
            str(f["timeouts"]),
            str(f["cold_starts"]),
            "–" if p50 is None else f"{p50:.0f}",
            "–" if top is None else f"{top:.0f}",
            f"{f['max_rss_mb']:.0f}",
        )
    out.print(table)
    out.print(
        f"spawn: {report.get('spawn')}, python {report.get('python')}; "
        f"cold start p50 over all: {report.get('cold_start_ms_p50_all')} ms"
    )


def _mode_note(mode: str) -> str:
    if mode == "isolated":
        return "isolated: each in worker processes from its own cdk.out asset (host build), template settings"
    return "in-process: handlers run inside the sandbox process (--in-process)"


def _print_sandbox(state: Any) -> None:
    out.print(f"sandbox running (pid {state.pid}), environment {state.environment}, region {state.region}")
    for name, value in state.endpoints().items():
        out.print(f"  {name:<16} {value}")
    out.print(f"  time             {state.time_note}")
    out.print(f"  Lambda functions {_mode_note(state.lambda_mode)}")
    out.print(
        "use: orchestrator --sandbox release start --env staging ...  (or AWS_ENDPOINT_URL="
        + state.moto_url
        + ")"
    )


# ---- synth / render / demo ----------------------------------------------------------------


@app.command("synth")
def synth() -> None:
    """Synthesize both stages to cdk.out/ with the security gates (python -m infra.synth)."""
    code = subprocess.call([sys.executable, "-m", "infra.synth"], cwd=REPO_ROOT)  # noqa: S603
    raise typer.Exit(code)


@app.command("render")
def render(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Argument(
            help="ASL JSON file, a synthesized CloudFormation template, or omit with --execution."
        ),
    ] = None,
    state_machine: Annotated[
        str | None, typer.Option(help="Which state machine of a template (logical id or part of it).")
    ] = None,
    execution: Annotated[
        str | None, typer.Option(help="Execution ARN whose path to highlight (read from AWS or the sandbox).")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="svg, html or mermaid (default: from --out, else mermaid).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of standard output.")
    ] = None,
) -> None:
    """Draw a state machine graph (SVG/HTML/Mermaid), with an execution's path when given one."""
    from orchestrator.render.cli_support import render_command

    opts = _opts(ctx)
    if fmt is None:
        fmt = {".svg": "svg", ".html": "html", ".htm": "html", ".mmd": "mermaid"}.get(
            output.suffix.lower() if output else "", "mermaid"
        )
    if fmt not in {"svg", "html", "mermaid"}:
        usage_error(f"--format: {fmt!r} is not svg, html or mermaid")
    if source is None and execution is None:
        usage_error("render: give a definition file or --execution")
    from orchestrator.render.cli_support import RenderError

    aws = opts.aws() if execution else None
    try:
        text = render_command(source, state_machine, execution, fmt, aws)
    except RenderError as exc:
        usage_error(f"render: {exc}")
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        out.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@app.command("demo")
def demo(
    reports: Annotated[Path, typer.Option(help="Where the HTML reports go.")] = Path("reports"),
    keep: Annotated[bool, typer.Option("--keep", help="Leave the sandbox running afterwards.")] = False,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Run the Lambda handlers inside the sandbox process (for comparison; "
            "default: each function in worker processes from its cdk.out asset).",
        ),
    ] = False,
) -> None:
    """A healthy release and a faulty one that rolls itself back, in the local sandbox."""
    from orchestrator.demo import run_demo

    raise typer.Exit(run_demo(sandbox_dir(), reports, keep=keep, console=out, in_process=in_process))


# ---- operations: cost and DR drills (orchestrator/commands_ops.py) ------------------------
from orchestrator.commands_ops import cost_app, drill_app, ops_app  # noqa: E402 - it imports this module's helpers

app.add_typer(cost_app, name="cost")
app.add_typer(ops_app, name="ops")
app.add_typer(drill_app, name="drill")
# The pipeline's workflow (dr-drill.yml) spells the group `dr-drill`.
app.add_typer(drill_app, name="dr-drill", hidden=True)
from orchestrator.schedule_commands import schedule_app  # noqa: E402 - it imports this module's helpers

app.add_typer(schedule_app, name="schedule")


# ---- entry point ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr (tracebacks only with --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="orchestrator", standalone_mode=False)
        return int(code or 0)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        err.print("aborted", markup=False)
        return 130
    except typer.TyperException as exc:  # typer's (vendored click) usage and parameter errors
        if debug:
            raise
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: show its help, as --help would
            err.print(exc.format_message(), markup=False)
            return EXIT_USAGE
        where = f"{context.command_path}: " if context is not None else ""
        message = " ".join(exc.format_message().split())
        err.print(f"error: {where}{message}", markup=False)
        return EXIT_USAGE if exc.exit_code == 2 else exc.exit_code
    except CliError as exc:
        if debug:
            raise
        err.print(f"error: {exc}", markup=False)
        return exc.code
    except AwsError as exc:
        if debug:
            raise
        err.print(f"error: {exc}", markup=False)
        return EXIT_AWS
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if debug:
            raise
        err.print(
            f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", markup=False
        )
        return EXIT_AWS


if __name__ == "__main__":
    sys.exit(main())
