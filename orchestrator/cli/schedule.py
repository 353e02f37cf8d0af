"""`orchestrator schedule list | run | skip-to`: the environment's EventBridge Scheduler schedules.

`list` reads the schedules through the Scheduler API (AWS or the sandbox) and says when each runs
next (from its expression and time zone; with `--sandbox`, on the sandbox's clock, with its last
run). `run NAME` calls a schedule's target now with the schedule's own input, as EventBridge
Scheduler would (Lambda Invoke, synchronously so the result is shown, or StartExecution).
`skip-to NAME` (sandbox only) moves the sandbox's compressed clock to just before the schedule's
next run, so the sandbox's scheduler fires it by itself, as it would at that time on AWS.

NAME is a schedule's name (`staging-backup`) or its task (`backup`, `cost-check`, `dr-drill`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from contracts import names
from orchestrator.aws import Aws, AwsError
from orchestrator.cli.context import (
    EXIT_OK,
    EXIT_RELEASE_FAILED,
    CliError,
    EnvOpt,
    JsonOpt,
    check_env,
    out,
    usage_error,
)
from orchestrator.cli.context import options as _opts

schedule_app: typer.Typer = typer.Typer(
    help="EventBridge Scheduler schedules: list them, run one now, or (sandbox) let one fire.",
    no_args_is_help=True,
)
_TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
NameArg = Annotated[str, typer.Argument(help="Schedule name, or its task: backup, cost-check, dr-drill.")]


def _control(ctx: typer.Context) -> str:
    """The sandbox's control endpoint (clock, scheduler); usage error off the sandbox."""
    from orchestrator.sandbox.state import SandboxNotRunning, read_state

    opts = _opts(ctx)
    if not opts.target.sandbox:
        usage_error("this needs --sandbox: AWS's clock cannot be moved")
    try:
        return read_state(opts.sandbox_dir).control_url
    except SandboxNotRunning as exc:
        raise CliError(str(exc)) from exc


def _sandbox_view(ctx: typer.Context) -> dict[str, Any] | None:
    if not _opts(ctx).target.sandbox:
        return None
    from orchestrator.sandbox.control import ControlError, call

    try:
        return call(_control(ctx), "/schedules")
    except ControlError as exc:
        raise CliError(str(exc)) from exc


def _schedules(ctx: typer.Context, env: str) -> list[dict[str, Any]]:
    aws = _opts(ctx).aws()
    group = names.schedule_group_name(env)
    listed = aws.call("scheduler", "list_schedules", GroupName=group).get("Schedules", [])
    return [
        aws.call("scheduler", "get_schedule", Name=item["Name"], GroupName=group)
        for item in sorted(listed, key=lambda i: i["Name"])
    ]


def _resolve(ctx: typer.Context, env: str, name: str) -> dict[str, Any]:
    schedules = {s["Name"]: s for s in _schedules(ctx, env)}
    for candidate in (name, names.schedule_name(env, name)):
        if candidate in schedules:
            return schedules[candidate]
    known = ", ".join(sorted(schedules)) or "none"
    raise CliError(f"no schedule {name!r} in group {names.schedule_group_name(env)} (schedules: {known})", 2)


def _next_run(schedule: dict[str, Any], now: datetime) -> str | None:
    from orchestrator.sandbox.schedule_expressions import ExpressionError, parse_expression
    from orchestrator.sandbox.scheduler import SandboxScheduler

    try:
        expression = parse_expression(
            schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone")
        )
    except ExpressionError:
        return None
    due = SandboxScheduler._next(expression, schedule, now)
    return due.isoformat() if due else None


def _row(schedule: dict[str, Any], now: datetime, view: dict[str, Any] | None) -> dict[str, Any]:
    target = schedule["Target"]
    key = f"{schedule.get('GroupName')}/{schedule['Name']}"
    window = schedule.get("FlexibleTimeWindow") or {}
    policy = target.get("RetryPolicy") or {}
    row: dict[str, Any] = {
        "name": schedule["Name"],
        "group": schedule.get("GroupName"),
        "state": schedule.get("State"),
        "expression": schedule.get("ScheduleExpression"),
        "timezone": schedule.get("ScheduleExpressionTimezone"),
        "flexible_window_minutes": window.get("MaximumWindowInMinutes")
        if window.get("Mode") == "FLEXIBLE"
        else 0,
        "retry_attempts": policy.get("MaximumRetryAttempts"),
        "max_event_age_seconds": policy.get("MaximumEventAgeInSeconds"),
        "dead_letter_queue": (target.get("DeadLetterConfig") or {}).get("Arn"),
        "target": target["Arn"],
        "input": target.get("Input"),
        "next_run": (view or {}).get("next", {}).get(key) if view else _next_run(schedule, now),
    }
    if view is not None:
        runs = [r for r in view.get("runs", []) if r.get("schedule") == key]
        row["runs"] = len(runs)
        row["last_run"] = runs[-1] if runs else None
    return row


@schedule_app.command("list")
def schedule_list(ctx: typer.Context, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """Every schedule of the environment: expression, time zone, state, retries, DLQ, target, next run."""
    check_env(env)
    view = _sandbox_view(ctx)
    now = datetime.fromisoformat(view["now"]) if view else datetime.now(UTC)
    rows = [_row(s, now, view) for s in _schedules(ctx, env)]
    if as_json:
        print(
            json.dumps({"group": names.schedule_group_name(env), "now": now.isoformat(), "schedules": rows})
        )
        return
    if not rows:
        raise CliError(f"no schedules in group {names.schedule_group_name(env)}", EXIT_RELEASE_FAILED)
    clock = "sandbox clock" if view else "now"
    out.print(
        f"{names.schedule_group_name(env)}: {len(rows)} schedules ({clock} {now:%a %Y-%m-%d %H:%M} UTC)"
    )
    for row in rows:
        last = row.get("last_run")
        last_text = (
            f"; last run {last['scheduled_for'][:16]} {last['outcome']}"
            if last
            else ("; never run" if view else "")
        )
        out.print(
            f"{row['name']:<28} {row['state']:<8} {row['expression']} {row['timezone'] or 'UTC'}  "
            f"-> {row['target'].rsplit(':', 1)[-1]}  next {str(row['next_run'] or '-')[:16]}{last_text}",
            markup=False,
        )
        out.print(
            f"{'':<28} flexible window {row['flexible_window_minutes'] or 'off'}, retries "
            f"{row['retry_attempts']} within {row['max_event_age_seconds']} s, DLQ "
            f"{(row['dead_letter_queue'] or '-').rsplit(':', 1)[-1]}",
            markup=False,
        )


def run_target(aws: Aws, arn: str, payload: Any, summary: dict[str, Any], *, execution_prefix: str) -> int:
    """Call a schedule's target now with its input, as EventBridge Scheduler would: StartExecution
    of a state machine (status `started`), or a synchronous Lambda Invoke (`succeeded` or `failed`,
    its seconds, and its result or error). The outcome goes into `summary`; returns the exit code."""
    if ":stateMachine:" in arn:
        execution = f"{execution_prefix}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        summary.update(
            status="started", execution_arn=aws.start_execution(arn, execution, payload)["executionArn"]
        )
        return EXIT_OK
    if ":function:" in arn:
        started = time.monotonic()
        answer = aws.call(
            "lambda",
            "invoke",
            FunctionName=arn,
            InvocationType="RequestResponse",
            Payload=json.dumps(payload).encode(),
        )
        body = answer["Payload"].read()
        result = json.loads(body) if body else None
        failed = bool(answer.get("FunctionError"))
        summary.update(
            status="failed" if failed else "succeeded",
            seconds=round(time.monotonic() - started, 3),
            **({"error": result} if failed else {"result": result}),
        )
        return EXIT_RELEASE_FAILED if failed else EXIT_OK
    raise AwsError(f"schedule {summary['schedule']} targets {arn}: neither a function nor a state machine")


@schedule_app.command("run")
def schedule_run(
    ctx: typer.Context,
    name: NameArg,
    env: EnvOpt,
    wait: Annotated[
        bool, typer.Option("--wait", help="State machine targets: wait for the execution's end.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Call a schedule's target now with its input. Exit 0 on success (or a started execution
    without --wait), 1 when the target failed, 2 on usage errors, 3 when AWS refused a call."""
    check_env(env)
    schedule = _resolve(ctx, env, name)
    target = schedule["Target"]
    payload = json.loads(target.get("Input") or "{}")
    arn = str(target["Arn"])
    aws = _opts(ctx).aws()
    summary: dict[str, Any] = {"schedule": f"{schedule.get('GroupName')}/{schedule['Name']}", "target": arn}
    code = run_target(aws, arn, payload, summary, execution_prefix=schedule["Name"])
    if wait and summary["status"] == "started":
        describe = _wait_execution(ctx, summary["execution_arn"])
        summary.update(status=describe["status"], output=json.loads(describe.get("output") or "null"))
        summary.update(error=describe.get("error"), cause=describe.get("cause"))
        code = EXIT_OK if describe["status"] == "SUCCEEDED" else EXIT_RELEASE_FAILED
    if as_json:
        print(json.dumps(summary, default=str))
    else:
        _print_run(summary)
    raise typer.Exit(code)


def _wait_execution(ctx: typer.Context, arn: str, timeout: float | None = None) -> dict[str, Any]:
    aws = _opts(ctx).aws()
    interval = 0.25 if _opts(ctx).target.sandbox else 15.0
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        describe = aws.describe_execution(arn)
        if describe["status"] in _TERMINAL:
            return describe
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"{arn} still {describe['status']} after {timeout:.0f} s", EXIT_RELEASE_FAILED)
        time.sleep(interval)


def _print_run(summary: dict[str, Any]) -> None:
    head = f"{summary['schedule']} -> {summary['target'].rsplit(':', 1)[-1]}: {summary['status']}"
    if "seconds" in summary:
        head += f" in {summary['seconds']} s"
    out.print(head, markup=False)
    if summary.get("execution_arn"):
        out.print(f"  execution {summary['execution_arn']}", markup=False)
    if isinstance(summary.get("error"), dict):
        out.print(
            f"  {summary['error'].get('errorType')}: {summary['error'].get('errorMessage')}", markup=False
        )
    elif summary.get("error"):
        out.print(f"  {summary['error']}: {summary.get('cause')}", markup=False)
    record = (summary.get("output") or {}).get("record") if isinstance(summary.get("output"), dict) else None
    if isinstance(record, dict) and "rto_seconds" in record:
        out.print(
            f"  RTO {record.get('rto_seconds')} s, RPO {record.get('rpo_seconds')} s, snapshot "
            f"{record.get('snapshot')}, temporary group deleted {record.get('temporary_group_deleted')}",
            markup=False,
        )
    result = summary.get("result")
    if isinstance(result, dict):
        shown = {k: v for k, v in result.items() if not isinstance(v, list | dict)}
        out.print("  " + ", ".join(f"{k} {v}" for k, v in shown.items()), markup=False)


@schedule_app.command("skip-to")
def schedule_skip_to(
    ctx: typer.Context,
    name: NameArg,
    env: EnvOpt,
    lead: Annotated[
        float, typer.Option(min=0, help="Virtual seconds before the run to stop the clock at.")
    ] = 30.0,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Wait for the run (and a state machine's execution) to finish."),
    ] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Real seconds to wait at most.")] = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Sandbox only: move the compressed clock to just before NAME's next run; the sandbox's
    scheduler then fires it by itself. Exit 1 when the run or its execution failed."""
    from orchestrator.sandbox.control import ControlError, call

    check_env(env)
    url = _control(ctx)
    schedule = _resolve(ctx, env, name)
    key = f"{schedule.get('GroupName')}/{schedule['Name']}"
    try:
        view = call(url, "/schedules")
        if not view.get("firing", True):
            raise CliError(
                "this sandbox was started with its schedules off (ORCHESTRATOR_SANDBOX_SCHEDULES=off)", 2
            )
        due = view.get("next", {}).get(key)
        if not due:
            raise CliError(f"schedule {key} has no next run (disabled, ended or one-time and done)", 1)
        moment = datetime.fromisoformat(due).timestamp() - lead
        clock = call(url, "/clock", {"advance_to": datetime.fromtimestamp(moment, UTC).isoformat()})
    except ControlError as exc:
        raise CliError(str(exc)) from exc
    summary: dict[str, Any] = {"schedule": key, "due": due, "clock": clock["now"]}
    if not as_json:
        out.print(f"sandbox clock at {clock['now'][:19]}; {key} is due {due[:19]}", markup=False)
    code = EXIT_OK
    if wait:
        run = _wait_run(url, key, due, timeout)
        summary["run"] = run
        if run.get("outcome") != "delivered":
            code = EXIT_RELEASE_FAILED
        elif run.get("execution_arn"):
            describe = _wait_execution(ctx, run["execution_arn"], timeout)
            output = json.loads(describe.get("output") or "null")
            summary.update(status=describe["status"], output=output)
            code = EXIT_OK if describe["status"] == "SUCCEEDED" else EXIT_RELEASE_FAILED
        if not as_json:
            out.print(
                f"  fired {run.get('fired_at', '')[:19]} ({run.get('trigger')}): {run.get('outcome')}"
                + (f", {summary.get('status')} {run['execution_arn']}" if run.get("execution_arn") else "")
                + (f": {run['error']}" if run.get("error") else ""),
                markup=False,
            )
            record = (
                (summary.get("output") or {}).get("record")
                if isinstance(summary.get("output"), dict)
                else None
            )
            if isinstance(record, dict) and "rto_seconds" in record:
                out.print(
                    f"  RTO {record.get('rto_seconds')} s, RPO {record.get('rpo_seconds')} s, snapshot "
                    f"{record.get('snapshot')}",
                    markup=False,
                )
    if as_json:
        print(json.dumps(summary, default=str))
    raise typer.Exit(code)


def _wait_run(url: str, key: str, due: str, timeout: float) -> dict[str, Any]:
    """The recorded run of `key` scheduled for `due` (recorded once its delivery is over)."""
    from orchestrator.sandbox.control import ControlError, call

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            runs = call(url, "/schedules").get("runs", [])
        except ControlError as exc:
            raise CliError(str(exc)) from exc
        for run in runs:
            if run.get("schedule") == key and run.get("scheduled_for") == due:
                return dict(run)
        time.sleep(0.1)
    raise CliError(f"schedule {key} did not run within {timeout:.0f} s", EXIT_RELEASE_FAILED)


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")
