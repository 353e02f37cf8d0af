"""Operations command groups: `cost report`, `cost estimate`, `drill start`, `drill status`, `ops schedules`,
`ops run`.

`cost report` asks Cost Explorer (the same query as the daily cost check) and compares with the
environment's budget; `cost estimate` prices a synthesized stage offline from
orchestrator/pricing.json; `drill start|status` drive the `<env>-dr-drill` state machine
(`dr-drill` is the same group under the name the pipeline's workflow uses); `ops schedules`
lists the environment's EventBridge Scheduler schedules and `ops run <task>` fires one schedule's
target now with the schedule's own input (the same call the scheduler makes), on AWS or in the
sandbox.
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from contracts import names
from orchestrator.cli.context import (
    EXIT_OK,
    EXIT_RELEASE_FAILED,
    EXIT_USAGE,
    CliError,
    EnvOpt,
    JsonOpt,
    check_env,
    group,
    options,
    out,
    usage_error,
    whoami,
)
from orchestrator.cli.schedule import run_target
from orchestrator.paths import REPO_ROOT

cost_app = group("Cost Explorer report and the offline monthly estimate of a stage.")
drill_app = group("Disaster-recovery drills: restore a backup into a temporary group and verify it.")
ops_app = group("Scheduled operations: the schedules, and running one now as it would run.")
DRILL_TYPES = ("snapshot-restore", "event-path")
SCHEDULED = ("backup", "cost-check", "dr-drill")
_TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def drill_state_machine(env: str, drill_type: str = "snapshot-restore") -> str:
    """`<env>-dr-drill` (snapshot restore) or `<env>-event-path-drill` (queue -> DLQ -> redrive)."""
    if drill_type == "event-path":
        return names.event_path_drill_state_machine_name(env)
    return names.dr_drill_state_machine_name(env)


def _config(env: str) -> dict[str, Any]:
    path = REPO_ROOT / "config" / f"{env}.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise CliError(f"config/{env}.json could not be read: {exc}", EXIT_USAGE) from exc


# ---- cost ---------------------------------------------------------------------------------


@cost_app.command("report")
def cost_report(
    ctx: typer.Context,
    env: EnvOpt,
    day: Annotated[
        str | None, typer.Option(help="UTC day to judge, YYYY-MM-DD (default: yesterday).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Yesterday's cost per service against the daily budget and the trailing 7-day mean."""
    from datetime import date

    from tasks.common import utc_now
    from tasks.cost_check import CostSettings, check, cost_explorer

    check_env(env)
    if day is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
        usage_error(f"--day: {day!r} is not YYYY-MM-DD")
    budget = float(_config(env)["budget"]["daily_limit_usd"])
    aws = options(ctx).aws()
    settings = CostSettings(environment=env, daily_budget_usd=budget)
    when = date.fromisoformat(day) if day else utc_now().date() - timedelta(days=1)
    try:
        result = check(settings, cost_explorer(aws.session, aws.target.endpoint_url), when)
    except Exception as exc:  # noqa: BLE001 - botocore errors become one line with the call named
        raise CliError(f"ce.get_cost_and_usage: {exc}") from exc
    if as_json:
        print(json.dumps(result))
    else:
        flag = "ANOMALY" if result["anomaly"] else "normal"
        mean = result["trailing_mean_usd"]
        out.print(
            f"{env} {result['day']}{' (estimated)' if result['estimated'] else ''}: "
            f"{result['total_usd']:.2f} USD = {result['budget_percent']:.0f}% of the "
            f"{result['daily_budget_usd']:.2f} USD budget; 7-day mean "
            f"{'n/a' if mean is None else f'{mean:.2f} USD'} -> {flag}"
        )
        for reason in result["reasons"]:
            out.print(f"  - {reason}")
        for line in result["by_service"][:10]:
            out.print(
                f"  {line['service']:<45} {line['usd']:>9.2f}  mean {line['mean_usd']:>8.2f}  "
                f"delta {line['delta_usd']:>+8.2f}"
            )
    raise typer.Exit(EXIT_RELEASE_FAILED if result["anomaly"] else EXIT_OK)


@cost_app.command("estimate")
def cost_estimate(
    env: EnvOpt,
    cdk_out: Annotated[Path, typer.Option(help="Cloud assembly from `make synth`.")] = REPO_ROOT / "cdk.out",
    releases_per_month: Annotated[int, typer.Option(min=0, help="Releases per month.")] = 30,
    as_json: JsonOpt = False,
) -> None:
    """Monthly fixed cost of the synthesized stage from the repository's price table (offline)."""
    from orchestrator.costs import EstimateError, estimate, merge, stage_templates

    check_env(env)
    config = _config(env)
    drills = 4 if env == "staging" else 1
    try:
        result = estimate(
            merge(stage_templates(cdk_out, env)),
            environment=env,
            region=config["region"],
            release_steps=len(config["release"]["steps"]),
            releases_per_month=releases_per_month,
            drills_per_month=drills,
        )
    except EstimateError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if as_json:
        print(json.dumps(result.to_json()))
        return
    out.print(
        f"{env}: about {result.total:.2f} USD per month "
        f"({result.region} list prices of {result.prices_as_of}, orchestrator/pricing.json)"
    )
    for line in sorted(result.lines, key=lambda item: item.monthly, reverse=True):
        out.print(f"  {line.monthly:>9.2f}  {line.item} ({line.quantity:g} {line.unit})", markup=False)
    for note in result.notes:
        out.print(f"  note: {note}", markup=False)


# ---- drill --------------------------------------------------------------------------------


@drill_app.command("start")
def drill_start(
    ctx: typer.Context,
    env: EnvOpt,
    drill_type: Annotated[
        str, typer.Option("--type", help="Drill type: snapshot-restore or event-path.")
    ] = "snapshot-restore",
    snapshot: Annotated[
        str | None, typer.Option(help="Snapshot to restore (default: the newest backup).")
    ] = None,
    failover: Annotated[
        bool | None,
        typer.Option(
            "--failover/--no-failover", help="Run TestFailover on the temporary group (staging only)."
        ),
    ] = None,
    drill_id: Annotated[
        str | None, typer.Option(help="Drill id (execution name); generated if absent.")
    ] = None,
    events: Annotated[
        int | None, typer.Option(min=1, max=50, help="event-path: marked events to send (default 10).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the end; the exit code follows the drill.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start a DR drill (it takes the environment's release lock while it runs)."""
    check_env(env)
    if drill_type not in DRILL_TYPES:
        usage_error(f"--type: {drill_type!r} is not one of {', '.join(DRILL_TYPES)}")
    if failover and env == "production":
        usage_error("--failover: TestFailover is only drilled in staging")
    if drill_type == "event-path" and (snapshot or failover is not None):
        usage_error("--snapshot/--failover: only the snapshot-restore drill takes them")
    if drill_type != "event-path" and events is not None:
        usage_error("--events: only the event-path drill takes it")
    name = drill_id or f"drill-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}", name):
        usage_error(f"--drill-id: {name!r} must be 1-40 letters, digits or dashes")
    request: dict[str, Any] = {"type": drill_type, "requested_by": whoami(), "drill_id": name}
    if snapshot:
        request["snapshot"] = snapshot
    if failover is not None:
        request["failover"] = failover
    if events is not None:
        request["events"] = events
    aws = options(ctx).aws()
    machine = aws.state_machine_arn(drill_state_machine(env, drill_type))
    arn = aws.start_execution(machine, name, request)["executionArn"]
    if as_json and not wait:
        print(json.dumps({"drill_id": name, "execution_arn": arn}))
    elif not as_json:
        out.print(f"drill [bold]{name}[/] started: {arn}")
    if wait:
        raise typer.Exit(_wait(ctx, arn, as_json))


def _wait(ctx: typer.Context, arn: str, as_json: bool) -> int:
    aws = options(ctx).aws()
    interval = 0.25 if options(ctx).target.sandbox else 15.0
    while True:
        describe = aws.describe_execution(arn)
        if describe["status"] in _TERMINAL:
            return _print_status(describe, as_json)
        time.sleep(interval)


def _print_status(describe: dict[str, Any], as_json: bool) -> int:
    output = json.loads(describe.get("output") or "null")
    record = (output or {}).get("record") if isinstance(output, dict) else None
    summary = {
        "drill_id": describe.get("name"),
        "status": describe["status"],
        "error": describe.get("error"),
        "cause": describe.get("cause"),
        "record": record,
        "execution_arn": describe["executionArn"],
    }
    if as_json:
        print(json.dumps(summary, default=str))
    else:
        out.print(f"drill {summary['drill_id']}: {summary['status']}", markup=False)
        if summary["error"]:
            out.print(f"  {summary['error']}: {summary['cause']}", markup=False)
        if record and record.get("type") == "event-path":
            out.print(
                f"  {record.get('events')} events: {record.get('dead_lettered')} dead-lettered, "
                f"{record.get('delivered')} delivered after the redrive; mapping restored "
                f"{record.get('mapping_restored')}",
                markup=False,
            )
        elif record:
            out.print(
                f"  RTO {record.get('rto_seconds')} s, RPO {record.get('rpo_seconds')} s, "
                f"snapshot {record.get('snapshot')}, temporary group deleted "
                f"{record.get('temporary_group_deleted')}",
                markup=False,
            )
    # A running drill is not a failure; a finished one that did not succeed is.
    return (
        EXIT_RELEASE_FAILED
        if describe["status"] in _TERMINAL and describe["status"] != "SUCCEEDED"
        else EXIT_OK
    )


@drill_app.command("status")
def drill_status(
    ctx: typer.Context,
    drill_id: Annotated[str | None, typer.Argument(help="Drill id (default: the latest drill).")] = None,
    env: EnvOpt = "staging",
    drill_type: Annotated[
        str, typer.Option("--type", help="Drill type: snapshot-restore or event-path.")
    ] = "snapshot-restore",
    as_json: JsonOpt = False,
) -> None:
    """The state of a drill (the latest by default): status, error, RTO/RPO once recorded."""
    check_env(env)
    if drill_type not in DRILL_TYPES:
        usage_error(f"--type: {drill_type!r} is not one of {', '.join(DRILL_TYPES)}")
    aws = options(ctx).aws()
    machine = aws.state_machine_arn(drill_state_machine(env, drill_type))
    if drill_id:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,79}", drill_id):
            usage_error(f"{drill_id!r} is not a drill id")
        arn = machine.replace(":stateMachine:", ":execution:") + f":{drill_id}"
    else:
        latest = aws.list_executions(machine, limit=1)
        if not latest:
            raise CliError(f"no drill has run in {env}", EXIT_RELEASE_FAILED)
        arn = latest[0]["executionArn"]
    raise typer.Exit(_print_status(aws.describe_execution(arn), as_json))


# ---- ops: schedules -------------------------------------------------------------------------


@ops_app.command("schedules")
def ops_schedules(ctx: typer.Context, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """The environment's operations schedules: expression, state and target."""
    check_env(env)
    aws = options(ctx).aws()
    group = names.schedule_group_name(env)
    listed = aws.call("scheduler", "list_schedules", GroupName=group).get("Schedules", [])
    rows = []
    for item in sorted(listed, key=lambda i: i["Name"]):
        schedule = aws.call("scheduler", "get_schedule", Name=item["Name"], GroupName=group)
        rows.append(
            {
                "name": schedule["Name"],
                "expression": schedule.get("ScheduleExpression"),
                "timezone": schedule.get("ScheduleExpressionTimezone"),
                "state": schedule.get("State"),
                "target": schedule["Target"]["Arn"],
                "input": schedule["Target"].get("Input"),
            }
        )
    if as_json:
        print(json.dumps({"group": group, "schedules": rows}))
        return
    if not rows:
        raise CliError(f"no schedules in group {group}", EXIT_RELEASE_FAILED)
    for row in rows:
        out.print(
            f"{row['name']:<32} {row['state']:<8} {row['expression']} {row['timezone'] or ''}  "
            f"-> {row['target'].rsplit(':', 1)[-1]}",
            markup=False,
        )


@ops_app.command("run")
def ops_run(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="Scheduled task: backup, cost-check or dr-drill.")],
    env: EnvOpt,
    as_json: JsonOpt = False,
) -> None:
    """Run a scheduled task now: its schedule's target, with the schedule's input.

    Exit 0 when the function succeeded (or the state machine started), 1 when the function
    failed, 2 on usage errors, 3 when AWS refused a call."""
    check_env(env)
    if task not in SCHEDULED:
        usage_error(f"{task!r} is not one of {', '.join(SCHEDULED)}")
    aws = options(ctx).aws()
    name, group = names.schedule_name(env, task), names.schedule_group_name(env)
    target = aws.call("scheduler", "get_schedule", Name=name, GroupName=group)["Target"]
    payload = json.loads(target.get("Input") or "{}")
    arn = str(target["Arn"])
    summary: dict[str, Any] = {"task": task, "schedule": f"{group}/{name}", "target": arn}
    code = run_target(aws, arn, payload, summary, execution_prefix=task)
    if as_json:
        print(json.dumps(summary, default=str))
    elif summary["status"] == "started":
        out.print(f"{task}: started {summary['execution_arn']}", markup=False)
    elif summary["status"] == "failed":
        error = summary["error"] if isinstance(summary["error"], dict) else {}
        out.print(
            f"{task}: FAILED in {summary['seconds']}s: {error.get('errorType')}: {error.get('errorMessage')}",
            markup=False,
        )
    else:
        out.print(f"{task}: succeeded in {summary['seconds']}s", markup=False)
        _print_result(task, summary["result"])
    raise typer.Exit(code)


def _print_result(task: str, result: Any) -> None:
    if not isinstance(result, dict):
        return
    if task == "backup":
        out.print(
            f"  snapshot {result.get('snapshot')} ({result.get('status')}), {result.get('total_keys')} keys, "
            f"exported {result.get('exported')}, pruned {result.get('pruned')}, manifest "
            f"{result.get('manifest')}",
            markup=False,
        )
    elif task == "cost-check":
        out.print(
            f"  {result.get('day')}: {result.get('total_usd')} USD = {result.get('budget_percent')}% of the "
            f"daily budget; anomaly {result.get('anomaly')}",
            markup=False,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(cost_app, name="cost")
    app.add_typer(ops_app, name="ops")
    app.add_typer(drill_app, name="drill")
    # The pipeline's workflow (dr-drill.yml) spells the group `dr-drill`.
    app.add_typer(drill_app, name="dr-drill", hidden=True)
