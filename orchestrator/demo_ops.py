"""`make demo-ops` (`python -m orchestrator.demo_ops`): the operations side, fired by the schedules.

1. starts the sandbox (moto, Redis, the gateway, the synthesized staging stage) in the background;
2. puts analytics events through the stage's event queue, so the fan-out stores channel
   snapshots in the cache (the data the backup and the drill are about);
3. moves the sandbox's compressed clock to just before the daily backup that precedes the next
   weekly DR drill: the stage's backup schedule fires by itself (EventBridge Scheduler's Lambda
   target, as its role), the snapshot and its manifest land in the backup bucket;
4. moves the clock to just before that drill: its schedule starts the DR drill state machine,
   which restores the newest backup into a temporary group (a second server loaded from the
   exported snapshot), verifies it against the manifest, tests failover, deletes the group and
   releases the lock; RTO and RPO are printed and an HTML report is written under reports/;
5. stops the sandbox.

Everything goes through boto3 and the sandbox's control endpoint (its clock), like an operator's
session; nothing is called directly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from contracts import names
from orchestrator.aws import Aws, Target
from orchestrator.paths import REPO_ROOT, sandbox_dir
from orchestrator.sandbox.control import call as control
from orchestrator.sandbox.daemon import start_background, stop_background
from orchestrator.sandbox.schedule_expressions import parse_expression
from orchestrator.sandbox.state import SandboxState

ENV = "staging"
TIME_SCALE = 60.0
LEAD_SECONDS = 30.0  # the clock stops this long (virtual) before a run
ASSETS = ("eth", "btc", "sol", "arb", "op", "avax", "matic", "link")
PROTOCOLS = ("uniswap", "aave", "curve", "lido", "maker", "compound", "gmx", "balancer")
# 256 channels: enough snapshots that the manifest samples some of them (one key in 64).
CHANNELS = [f"price:{a}-{n:02d}" for a in ASSETS for n in range(16)] + [
    f"tvl:{p}-{n:02d}" for p in PROTOCOLS for n in range(16)
]
EVENTS_PER_CHANNEL = 1


class DemoFailed(RuntimeError):
    pass


def _schedule_key(task: str) -> str:
    return f"{names.schedule_group_name(ENV)}/{names.schedule_name(ENV, task)}"


def _runs_for(aws: Aws, task: str) -> tuple[str, str]:
    """(expression, time zone) of the environment's schedule of `task`."""
    schedule = aws.call(
        "scheduler",
        "get_schedule",
        Name=names.schedule_name(ENV, task),
        GroupName=names.schedule_group_name(ENV),
    )
    return str(schedule["ScheduleExpression"]), str(schedule.get("ScheduleExpressionTimezone") or "UTC")


def plan(now: datetime, backup: tuple[str, str], drill: tuple[str, str]) -> tuple[datetime, datetime]:
    """The next drill run D whose preceding backup run B is still ahead of `now`: (B, D)."""
    backup_expr, drill_expr = parse_expression(*backup), parse_expression(*drill)
    after = now
    for _ in range(10):
        due = drill_expr.next_after(after)
        if due is None:
            break
        last: datetime | None = None
        cursor = due - timedelta(days=8)
        while True:
            following = backup_expr.next_after(cursor)
            if following is None or following > due:
                break
            last, cursor = following, following
        if last is not None and last - timedelta(seconds=2 * LEAD_SECONDS) > now:
            return last, due
        after = due
    raise DemoFailed("no drill run with a backup run before it in the next ten drill runs")


def _wait_run(state: SandboxState, key: str, due: datetime, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in control(state.control_url, "/schedules")["runs"]:
            if run.get("schedule") == key and datetime.fromisoformat(run["scheduled_for"]) == due:
                return dict(run)
        time.sleep(0.1)
    raise DemoFailed(f"{key} did not run for {due.isoformat()} within {timeout:.0f} s")


def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise DemoFailed(f"{what} within {timeout:.0f} s")


def publish_events(aws: Aws, state: SandboxState, console: Console) -> int:
    """Events through the stage's queue; the fan-out (its `live` alias) stores each channel's snapshot."""
    import redis

    url = aws.call("sqs", "get_queue_url", QueueName=names.queue_name(ENV, "events"))["QueueUrl"]
    cache = redis.Redis.from_url(state.redis_url)
    before = cache.dbsize()
    sequence = 0
    for round_ in range(EVENTS_PER_CHANNEL):
        entries = []
        for channel in CHANNELS:
            sequence += 1
            body = {
                "channel": channel,
                "type": channel.split(":")[0],
                "payload": {"value": 1000 + sequence, "sequence": sequence},
                "ts": time.time() * 1000,
            }
            entries.append({"Id": str(sequence), "MessageBody": json.dumps(body)})
        for start in range(0, len(entries), 10):
            aws.call("sqs", "send_message_batch", QueueUrl=url, Entries=entries[start : start + 10])
        if round_ == 0:
            console.print(
                f"published events on {len(CHANNELS)} channels through {names.queue_name(ENV, 'events')}"
            )
    _until(
        lambda: cache.dbsize() >= before + len(CHANNELS),
        60,
        "the fan-out did not store the channels' snapshots",
    )
    time.sleep(1.0)  # the last batches land
    return int(cache.dbsize())


def run_ops_demo(
    sandbox_dir: Path, reports: Path, *, keep: bool = False, console: Console | None = None
) -> int:
    console = console or Console(highlight=False)
    wall_started = time.monotonic()
    directory = sandbox_dir / "demo-ops"
    console.print("[bold]Realtime analytics operations demo[/] (embedded sandbox: no AWS account needed)")
    state = start_background(directory, time_scale=TIME_SCALE, progress=console, schedules=True)
    console.print(f"sandbox up in {state.startup_seconds:.1f} s (pid {state.pid}); {state.time_note}")
    aws = Aws(Target(region=state.region, endpoint_url=state.moto_url, sandbox=True))
    figures: dict[str, Any] = {}
    try:
        keys = publish_events(aws, state, console)
        console.print(f"cache holds {keys} keys")
        now = datetime.fromisoformat(control(state.control_url, "/clock")["now"])
        backup_schedule, drill_schedule = _runs_for(aws, "backup"), _runs_for(aws, "dr-drill")
        backup_due, drill_due = plan(now, backup_schedule, drill_schedule)
        console.print(
            f"sandbox clock {now:%a %Y-%m-%d %H:%M} UTC; schedules: backup {backup_schedule[0]}, "
            f"DR drill {drill_schedule[0]} ({drill_schedule[1]})"
        )

        console.rule(f"backup, fired by its schedule at {backup_due:%a %Y-%m-%d %H:%M} UTC")
        _skip_to(state, backup_due, console)
        run = _wait_run(state, _schedule_key("backup"), backup_due, 120)
        console.print(
            f"{names.schedule_name(ENV, 'backup')} fired at {run['fired_at'][:19]}: {run['outcome']}"
        )
        if run["outcome"] != "delivered":
            raise DemoFailed(f"the backup schedule's run was {run['outcome']}: {run.get('error')}")
        backup = _backup_result(aws, backup_due)
        console.print(
            f"snapshot {backup['snapshot']}: {backup['keys']} keys in its manifest (taken "
            f"{backup['taken_at']}), {backup['rdb_bytes']:,} bytes exported to s3://{backup['bucket']}/"
            f"{backup['rdb_key']}"
        )

        console.rule(f"DR drill, fired by its schedule at {drill_due:%a %Y-%m-%d %H:%M} UTC")
        _skip_to(state, drill_due, console)
        run = _wait_run(state, _schedule_key("dr-drill"), drill_due, 120)
        if run["outcome"] != "delivered" or not run.get("execution_arn"):
            raise DemoFailed(f"the drill schedule's run was {run['outcome']}: {run.get('error')}")
        arn = run["execution_arn"]
        console.print(
            f"{names.schedule_name(ENV, 'dr-drill')} fired at {run['fired_at'][:19]}: started {arn}"
        )
        describe = _follow(aws, arn, console)
        output = json.loads(describe.get("output") or "{}")
        record = output.get("record") or {}
        figures = {"status": describe["status"], **record}
        report = _report(aws, arn, output, run, drill_schedule, backup, reports, wall_started)
        _summary(console, describe, record, report)
    except DemoFailed as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        figures = {"status": "FAILED"}
    finally:
        if not keep:
            stop_background(directory)
    console.print(f"operations demo wall time {time.monotonic() - wall_started:.1f} s")
    return 0 if figures.get("status") == "SUCCEEDED" and figures.get("outcome") == "SUCCEEDED" else 1


def _skip_to(state: SandboxState, due: datetime, console: Console) -> None:
    moment = due - timedelta(seconds=LEAD_SECONDS)
    clock = control(state.control_url, "/clock", {"advance_to": moment.isoformat()})
    console.print(
        f"sandbox clock moved to {clock['now'][:19]} (runs it passes over are recorded as skipped); "
        f"the scheduler fires the run {LEAD_SECONDS:.0f} s later on the {TIME_SCALE:g}x clock"
    )


def _backup_result(aws: Aws, due: datetime) -> dict[str, Any]:
    snapshot = f"{names.cache_replication_group_id(ENV)}-{due:%Y-%m-%d}"
    bucket = next(b["Name"] for b in aws.call("s3", "list_buckets")["Buckets"] if "backups" in b["Name"])

    def exported() -> bool:
        listed = aws.call("s3", "list_objects_v2", Bucket=bucket, Prefix=f"exports/{snapshot}.json")
        return bool(listed.get("Contents"))

    _until(exported, 120, f"the backup did not export {snapshot}")
    rdb_key = f"{snapshot}-0001.rdb"
    _until(
        lambda: aws.call("s3", "list_objects_v2", Bucket=bucket, Prefix=rdb_key).get("Contents"),
        30,
        f"{rdb_key} was not written",
    )
    manifest = json.loads(
        aws.call("s3", "get_object", Bucket=bucket, Key=f"manifests/{snapshot}.json")["Body"].read()
    )
    head = aws.call("s3", "head_object", Bucket=bucket, Key=rdb_key)
    return {
        "snapshot": snapshot,
        "bucket": bucket,
        "keys": manifest.get("total_keys"),
        "taken_at": manifest.get("taken_at"),
        "rdb_key": rdb_key,
        "rdb_bytes": int(head["ContentLength"]),
    }


def _follow(aws: Aws, arn: str, console: Console, timeout: float = 300) -> dict[str, Any]:
    """Print each state as the drill enters it; the final description."""
    client = aws.client("stepfunctions")
    seen = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _history(client, arn)
        for event in events[seen:]:
            details = event.get("stateEnteredEventDetails")
            if details:
                console.print(f"  {event['timestamp']:%H:%M:%S} {details['name']}", markup=False)
        seen = len(events)
        describe = client.describe_execution(executionArn=arn)
        if describe["status"] != "RUNNING":
            return dict(describe)
        time.sleep(0.2)
    raise DemoFailed(f"{arn} did not finish within {timeout:.0f} s")


def _history(client: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in client.get_paginator("get_execution_history").paginate(executionArn=arn):
        events += page["events"]
    return events


def _report(
    aws: Aws,
    arn: str,
    output: dict[str, Any],
    run: dict[str, Any],
    schedule: tuple[str, str],
    backup: dict[str, Any],
    reports: Path,
    wall_started: float,
) -> Path:
    from orchestrator.render.graph import view_from_history
    from orchestrator.render.ops_report import drill_report

    client = aws.client("stepfunctions")
    view = view_from_history(aws.definition_for_execution(arn), _history(client, arn))
    page = drill_report(
        view,
        execution_arn=arn,
        output=output,
        fired_by={
            "schedule": names.schedule_name(ENV, "dr-drill"),
            "expression": f"{schedule[0]} {schedule[1]}",
            "scheduled_for": run["scheduled_for"],
            "fired_at": run["fired_at"],
        },
        backup={
            "snapshot": backup["snapshot"],
            "keys in manifest": backup["keys"],
            "taken at": backup["taken_at"],
            "exported": f"s3://{backup['bucket']}/{backup['rdb_key']} ({backup['rdb_bytes']:,} bytes)",
        },
        notes={
            "time": f"the sandbox's clock, compressed {TIME_SCALE:g}x and moved to each run by the demo",
            "restored group": "a second local server loaded from the snapshot's RDB (the sandbox's stand-in)",
            "demo wall time so far": f"{time.monotonic() - wall_started:.1f} s",
        },
    )
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / f"ops-dr-drill-{arn.rsplit(':', 1)[-1]}.html"
    path.write_text(page, encoding="utf-8")
    return path


def _summary(console: Console, describe: dict[str, Any], record: dict[str, Any], report: Path) -> None:
    from orchestrator.render.ops_report import duration

    verification = record.get("verification") or {}
    console.print(
        f"DR drill {describe['status']}: RTO {duration(record.get('rto_seconds'))} "
        f"({record.get('rto_seconds')} s), RPO {duration(record.get('rpo_seconds'))} "
        f"({record.get('rpo_seconds')} s)",
        markup=False,
    )
    console.print(
        f"  restored {verification.get('restored_keys')}/{verification.get('expected_keys')} keys of "
        f"{record.get('snapshot')}, sample match {verification.get('sample_match_rate')}, failover tested "
        f"{record.get('failover_tested')}, temporary group {record.get('temporary_group')} deleted "
        f"{record.get('temporary_group_deleted')}",
        markup=False,
    )
    console.print(f"report: {report.resolve()}", markup=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.demo_ops", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--reports", type=Path, default=REPO_ROOT / "reports")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running afterwards")
    args = parser.parse_args(argv)
    return run_ops_demo(sandbox_dir(), args.reports, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
